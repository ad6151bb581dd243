"""``torch.compile`` of the 1-bit networks: one graph for a training step, no recompile, same values.

The compiler can fuse the memory-bound passes of a 1-bit step (sign and its straight-through
mask, α·sign(W), BatchNorm) only if it sees the whole network as one graph. These tests trace
with the ``aot_eager`` backend (Dynamo and AOTAutograd, the forward and the backward graph,
without generating C++), so they run in seconds and fail on the first graph break or recompile.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cpnas.binary import BINARY, REAL, REAL_RELU
from cpnas.genotype import DARTS_V2
from cpnas.networks import NetworkCIFAR, SearchNetwork
from cpnas.space import covering_path


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _small_net(precision=BINARY, memory_format=torch.channels_last):
    torch.manual_seed(0)
    net = NetworkCIFAR(DARTS_V2, C=8, layers=3, auxiliary=True, precision=precision)
    return net.to(memory_format=memory_format).train()


@pytest.mark.parametrize("memory_format", [torch.channels_last, torch.contiguous_format],
                         ids=["channels_last", "contiguous"])
def test_training_step_of_a_fixed_genotype_is_one_graph_without_recompile(memory_format):
    net = _small_net(memory_format=memory_format)
    compiled = torch.compile(net, fullgraph=True, backend="aot_eager")  # fullgraph: a graph break raises
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 16, 16, generator=gen).contiguous(memory_format=memory_format)
    y = torch.randint(0, 10, (4,), generator=gen)
    with torch._dynamo.config.patch(error_on_recompile=True):
        for _ in range(3):  # the steps after the first reuse its graph: parameters changed in place, same guards
            opt.zero_grad(set_to_none=True)
            logits, aux = compiled(x)
            (F.cross_entropy(logits, y) + 0.4 * F.cross_entropy(aux, y)).backward()
            opt.step()
    explained = torch._dynamo.explain(net)(x)
    assert explained.graph_count == 1 and explained.graph_break_count == 0, explained.break_reasons


def test_compiled_step_equals_eager_step(monkeypatch):
    """The traced graph computes what eager computes: same logits, same gradients (float summation order aside)."""
    monkeypatch.setenv("CPNAS_FORMS", "sign=torch,dilated_conv=plain")
    eager = _small_net(memory_format=torch.contiguous_format)
    traced = _small_net(memory_format=torch.contiguous_format)
    traced.load_state_dict(eager.state_dict())
    compiled = torch.compile(traced, fullgraph=True, backend="aot_eager")
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    outs = []
    for fwd in (eager, compiled):
        logits, aux = fwd(x)
        (logits.square().mean() + aux.square().mean()).backward()
        outs.append(logits.detach())
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-5)
    for (name, p), q in zip(eager.named_parameters(), traced.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-5, msg=name)


def test_bench_section_reports_its_ratios_under_the_bench_json_keys():
    from cpnas import bench, compilebench

    train = {"C": 12, "layers": 8, "batch": 32, "optimizer": "adam",
             "step_s": {"eager": 0.30, "compiled": 0.15, "real_compiled": 0.14},
             "compile_s": {"compiled": 60.0, "real_compiled": 50.0},
             "gflops": {"eager": 2.0, "compiled": 4.0, "real_compiled": 4.2}}
    run = {"threads": 1, "matmul_peak_gflops": 100.0, "train": train, "compiled_over_eager_train": 2.0,
           "compiled_binary_over_real_step_time": 0.15 / 0.14}
    res = {"throughput": {}, "compile": {"runs": [run], "load_avg_start": [2.0], "load_avg_end": [2.0]}}
    bench._compile_headline(res)
    a = res["throughput"]
    assert a["compiled_over_eager_train"] == 2.0 and a["matmul_peak_gflops"] == 100.0
    assert a["achieved_gflops"]["train"]["compiled"] == 4.0 and "compiled_over_eager_search" not in a
    md = compilebench.compile_markdown(res["compile"])
    assert "compiled / eager training speed: 2.00×" in md and "| compiled | 0.150 | 4.00 | 4.0 % | 60 |" in md



def test_profiled_kernels_fall_in_their_classes_and_bound_the_speed_up():
    from cpnas import compilebench

    kc = compilebench.kernel_class
    assert kc("aten::convolution_backward") == kc("mkldnn::_convolution_pointwise") == "convolution"
    assert kc("aten::addmm") == "matmul" and kc("aten::_foreach_add_") == "optimizer"
    assert kc("Torch-Compiled Region: 0/0") == "compiled region"
    assert kc("aten::native_batch_norm_backward") == kc("cpnas::sign_ste") == "elementwise and other"
    lim = {"threads": 1, "steps": 3, "step_s": {"eager": 0.30, "compiled": 0.20},
           "per_step_s": {"eager": {"convolution": 0.10, "elementwise and other": 0.40},
                          "compiled": {"convolution": 0.10, "compiled region": 0.12}},
           "library_share_eager": 0.2, "amdahl_bound": 3.0}
    md = compilebench.limits_markdown(lim)
    assert "| convolution | 0.100 | 0.100 |" in md and "| step, unprofiled | 0.300 | 0.200 |" in md
    assert "at most **3.00×** faster" in md

@pytest.mark.parametrize("precision", [BINARY, REAL_RELU], ids=["child", "parent"])
def test_search_step_compiles_every_part_whole(monkeypatch, precision):
    """The search step as ``--compile on`` runs it: every part ``compile_ops`` compiles traces to one graph
    (``fullgraph``: a graph break raises), for every op on every edge, forward and backward."""
    from torch import nn

    from cpnas import accel

    compiled = []
    module_compile = nn.Module.compile

    def compile_whole(self, *args, **kwargs):
        compiled.append(self)
        return module_compile(self, *args, **{**kwargs, "fullgraph": True, "backend": "aot_eager"})

    monkeypatch.setattr(nn.Module, "compile", compile_whole)
    monkeypatch.setenv("CPNAS_FORMS", "sign=torch,dilated_conv=plain")
    torch.manual_seed(0)
    net = SearchNetwork(C=8, num_classes=10, layers=2, reduction_layers=(1,), precision=precision, nodes=2).train()
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    accel.configure(compile="on")
    try:
        accel.compile_ops(net, x)
        assert len(compiled) == len(accel.compiled_parts(net)) > 0
        for path in accel.every_op_paths(net):
            net.zero_grad(set_to_none=True)
            net(x, path).square().mean().backward()
            assert all(p.grad is not None for p in net.stem.parameters())
    finally:
        accel.reset()
    from torch._dynamo.utils import counters

    assert not counters["graph_break"], dict(counters["graph_break"])


@pytest.mark.parametrize("stride", [1, 2])
def test_traced_max_pool_equals_eager_values_and_gradients(stride):
    """The pooling a compiled channels_last network runs (ATen's kernels as custom ops) is ``F.max_pool2d``,
    ties included (the gradient goes to a window's first maximum)."""
    from cpnas.ops import Pool

    pool = Pool("max", stride)
    x = torch.randn(2, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    x[:, :, :3, :3] = 1.0  # ties
    x = x.contiguous(memory_format=torch.channels_last)
    outs = []
    for fwd in (pool, torch.compile(pool, fullgraph=True, backend="aot_eager")):
        xi = x.clone().requires_grad_()
        y = fwd(xi)
        y.backward(torch.arange(y.numel(), dtype=y.dtype).reshape(y.shape))
        outs.append((y.detach(), xi.grad))
    assert torch.equal(outs[1][0], outs[0][0]) and torch.equal(outs[1][1], outs[0][1])
    explained = torch._dynamo.explain(pool)(x)
    assert explained.graph_break_count == 0
    assert any("cpnas.max_pool2d_with_indices" in str(n.target) for g in explained.graphs for n in g.graph.nodes)


def test_traced_relu_gradient_equals_eager():
    from cpnas.binary import _TracedReLU

    x = torch.cat([torch.tensor([-2.0, -0.0, 0.0, 1e-30, 3.0]),
                   torch.randn(100, generator=torch.Generator().manual_seed(0))])
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    grads = []
    for fn in (torch.relu, _TracedReLU.apply):
        xi = x.clone().requires_grad_()
        fn(xi).backward(g)
        grads.append(xi.grad)
    assert torch.equal(grads[1], grads[0])
