"""Packed 1-bit inference (cpnas.deploy): exact against the simulated network.

Oracles: the simulated network itself, as it is evaluated (its logits, and the
integers ``conv1x1(sign(x), sign(W))`` computed in float64 from its own inputs),
float64 convolutions of ±1 tensors, the simulated depthwise conv's own float32
outputs (whose signs at integer ties the packed kernel reproduces), PyTorch's
pooling, and a pure-PyTorch bit packer.
Every test runs with the kernel forms of :mod:`cpnas.dispatch` forced (the
defaults unless ``CPNAS_FORMS`` is set), so the simulated side is the same on every
CPU. Tests that need the C++ extension skip, with the reason, only where no C++
compiler or ninja is installed.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from cpnas.binary import BINARY, BinaryConv2d, get_precision
from cpnas.deploy import kernels
from cpnas.deploy.measure import LOGIT_TOLERANCE, exactness
from cpnas.deploy.network import PackedNetwork, load_packed, pack_network, to_bytes
from cpnas.deploy.packed import PackedConv1x1, pack_bits, unpack_signs
from cpnas.deploy.pair import calibrate_bn, sample_images
from cpnas.deploy.simulated import simulate
from cpnas.errors import CpnasError
from cpnas.genotype import DARTS_V2, load_genotype
from cpnas.networks import Cell, NetworkCIFAR
from cpnas.ops import OPS

needs_kernels = pytest.mark.skipif(kernels.toolchain_missing() is not None,
                                   reason=f"no {kernels.toolchain_missing()} to build the XNOR-popcount extension "
                                          f"({kernels.INSTALL_HINT})")


pytestmark = pytest.mark.usefixtures("default_forms")  # the simulated network's forms fixed


def _real_like(n: int, channels: int, size: int = 16) -> torch.Tensor:
    """Features of real images (or synthetic ones where no CIFAR-10 folder is here) through a fixed real conv."""
    images, _ = sample_images(n, image_size=size)
    stem = nn.Conv2d(3, channels, 3, padding=1, bias=False)
    with torch.no_grad():
        stem.weight.copy_(torch.randn(stem.weight.shape, generator=torch.Generator().manual_seed(1)))
        return stem(images)


def _bn_random(module: nn.Module, seed: int) -> None:
    """Trained-looking BN affine terms (γ around 1, β around 0) instead of the init's 1 and 0."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d) and m.affine:
            with torch.no_grad():
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(0.3 * torch.randn(m.bias.shape, generator=g))


def _assert_exact(report: dict) -> None:
    assert report["integers_equal"], report
    assert report["max_abs_diff"] <= LOGIT_TOLERANCE, report
    assert report["exact"]


# --- storage format (pure PyTorch) ----------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 9, 63, 64, 65, 130])
def test_pack_bits_round_trips_signs_including_bit_63(n, seed):
    values = torch.randn(7, n)
    values[0, :] = -1.0  # every bit set, bit 63 included: the int64 word is negative
    words = pack_bits(values)
    assert words.shape == (7, -(-n // 64))
    assert torch.equal(unpack_signs(words, n), torch.where(values < 0, -1.0, 1.0))
    if n >= 64:
        assert words[0, 0].item() == -1  # all 64 bits of the first word


def test_pack_bits_maps_both_zeros_to_plus_one_as_sign_does():
    from cpnas.binary import sign

    values = torch.tensor([[0.0, -0.0, 1e-30, -1e-30]])
    assert torch.equal(unpack_signs(pack_bits(values), 4), sign(values))


# --- kernels ---------------------------------------------------------------------------------------------------


@needs_kernels
@pytest.mark.parametrize("c", [1, 12, 16, 63, 64, 65, 200])
def test_pack_signs_kernel_equals_the_python_packer(c, seed):
    x = torch.randn(37, c)
    x[0, 0], x[1, 0] = 0.0, -0.0
    assert torch.equal(kernels.pack_signs(x), pack_bits(x))


@needs_kernels
@pytest.mark.parametrize("c_in,c_out,stride", [(12, 24, 1), (64, 16, 1), (100, 40, 2), (256, 33, 1)])
def test_xnor_1x1_integers_and_folded_bn_equal_the_simulated_conv(c_in, c_out, stride, seed):
    conv = BinaryConv2d(c_in, c_out, 1, stride=stride, bias=False)
    bn = nn.BatchNorm2d(c_out)
    block = nn.Sequential(conv, bn)
    _bn_random(block, 0)
    x = torch.randn(3, c_in, 9, 10)
    calibrate_bn(block, x)
    from cpnas.deploy.packed import _bn_affine

    packed = PackedConv1x1.fold(conv, *_bn_affine(bn))
    x_cl = x.contiguous(memory_format=torch.channels_last)
    ints = packed.integer_dot(x_cl)
    xs = x[:, :, ::stride, ::stride]
    oracle = nn.functional.conv2d(torch.where(xs < 0, -1.0, 1.0).double(), torch.where(conv.weight < 0, -1.0, 1.0)
                                  .double().detach())
    assert torch.equal(ints.double(), oracle.permute(0, 2, 3, 1).reshape(-1, c_out))
    with torch.no_grad():
        assert (packed(x_cl) - block(x)).abs().max() <= 1e-5


def _depthwise_with_varied_alpha(c: int, k: int, stride: int, padding: int, dilation: int) -> BinaryConv2d:
    """A binary depthwise conv whose channels' scales α span four octaves (trained ones do): α's last bits
    decide the rounding residual of a sum of ±α terms."""
    conv = BinaryConv2d(c, c, k, stride=stride, padding=padding, dilation=dilation, groups=c, bias=False)
    with torch.no_grad():
        conv.weight.mul_(torch.logspace(-2, 0.5, c).view(c, 1, 1, 1))
    return conv


@needs_kernels
@pytest.mark.parametrize("c", [20, 64, 70])
@pytest.mark.parametrize("k,stride,padding,dilation", [(3, 1, 1, 1), (5, 1, 2, 1), (3, 1, 2, 2), (5, 1, 4, 2),
                                                       (3, 2, 1, 1), (5, 2, 4, 2)])
def test_int8_depthwise_integers_equal_the_exact_conv(c, k, stride, padding, dilation, seed):
    """The integers before the sign, against a float64 conv of ±1 tensors (exact)."""
    from cpnas.deploy.packed import PackedDepthwise

    conv = _depthwise_with_varied_alpha(c, k, stride, padding, dilation)
    dw = PackedDepthwise.from_binary(conv)
    x = torch.randn(2, c, 11, 12)
    x[:, :, 0, :3] = 0.0  # sign(0) = +1
    rows = x.permute(0, 2, 3, 1).reshape(-1, c).contiguous()
    signs = kernels.sign_pad(rows, 2, 11, 12, padding)
    _, sums = kernels.binary_depthwise(signs, dw.int8_weight, dw.alpha, k, stride, dilation, with_sums=True)
    oracle = nn.functional.conv2d(torch.where(x < 0, -1.0, 1.0).double(),
                                  torch.where(conv.weight < 0, -1.0, 1.0).double().detach(),
                                  None, stride, padding, dilation, c)
    oracle = oracle.permute(0, 2, 3, 1).reshape(-1, c)
    assert (oracle == 0).any()  # ties are exercised
    assert torch.equal(sums[:, :c].double(), oracle)
    assert not sums[:, c:].any()


@needs_kernels
@pytest.mark.parametrize("c", [12, 56, 70])
@pytest.mark.parametrize("k,stride,padding,dilation", [(3, 1, 1, 1), (5, 1, 2, 1), (3, 1, 2, 2), (5, 1, 4, 2),
                                                       (3, 2, 1, 1), (5, 2, 4, 2)])
@pytest.mark.parametrize("forms", ["memory_format=channels_last,dilated_conv=plain",
                                   "memory_format=contiguous,dilated_conv=space_to_batch"])
def test_int8_depthwise_signs_are_the_simulated_conv_signs_at_ties_too(c, k, stride, padding, dilation, forms,
                                                                       monkeypatch, seed):
    """The sign bits are those of the simulated float32 conv ``conv(sign(x), α·sign(W))``, in each memory format
    and dilated-conv form: where the integer sum is 0 its rounding residual decides, as the sign after it does."""
    from cpnas import dispatch
    from cpnas.deploy.packed import PackedDepthwise

    monkeypatch.setenv(dispatch.FORCE_ENV, forms + ",sign=torch")
    dispatch.reset()
    conv = _depthwise_with_varied_alpha(c, k, stride, padding, dilation)
    dw = PackedDepthwise.from_binary(conv)
    x = torch.randn(4, c, 12, 12)
    layout = torch.channels_last if "channels_last" in forms else torch.contiguous_format
    with torch.no_grad():
        simulated = conv.to(memory_format=layout)(x.contiguous(memory_format=layout))
    rows = x.permute(0, 2, 3, 1).reshape(-1, c).contiguous()
    signs = kernels.sign_pad(rows, 4, 12, 12, padding)
    bits, sums = kernels.binary_depthwise(signs, dw.int8_weight, dw.alpha, k, stride, dilation, with_sums=True)
    simulated = simulated.permute(0, 2, 3, 1).reshape(-1, c)
    tie = sums[:, :c] == 0
    assert (tie & (simulated < 0)).any() and (tie & (simulated >= 0)).any()  # ties go both ways, not as sign(0)
    assert torch.equal(bits, pack_bits(simulated))


@needs_kernels
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [7, 8])
def test_packed_pooling_is_bit_identical_to_pytorch(kind, stride, size, seed):
    from cpnas.deploy.packed import PackedPool
    from cpnas.ops import Pool

    pool = Pool(kind, stride)
    packed = PackedPool.of(pool)
    x = torch.randn(2, 21, size, size)
    x[0, 0] = 1.0  # equal values in a window
    for inp in (x, x.contiguous(memory_format=torch.channels_last)):
        assert torch.equal(packed(inp), pool(inp))


@needs_kernels
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("stride", [1, 2])
def test_xnor_1x1_takes_nchw_and_channels_last_inputs_at_any_batch(batch, memory_format, stride, seed):
    """An NCHW input of batch 1 reshapes to a view with strided channels: it must be copied, not refused."""
    conv = BinaryConv2d(32, 16, 1, stride=stride, bias=False)
    packed = PackedConv1x1.fold(conv, torch.ones(16, dtype=torch.float64), torch.zeros(16, dtype=torch.float64))
    x = torch.randn(batch, 32, 16, 16).contiguous(memory_format=memory_format)
    with torch.no_grad():
        assert (packed(x) - conv(x)).abs().max() <= 1e-5


@needs_kernels
def test_the_fastest_popcount_this_cpu_has_is_compiled_in():
    from cpnas.dispatch import cpu_info

    flags = set(cpu_info()["flags"].split())
    path = kernels.extension().simd_path()
    if {"avx512f", "avx512_vpopcntdq"} <= flags:
        assert path == "avx512_vpopcntdq"
    elif "avx2" in flags:
        assert path == "avx2"
    else:
        assert path == "portable"
    depthwise = kernels.extension().depthwise_path()
    assert depthwise == ("avx512bw_int8" if {"avx512f", "avx512bw"} <= flags else
                         "avx2_int8" if "avx2" in flags else "portable_int8")


# --- every op, whole cells, whole networks ---------------------------------------------------------------------


@needs_kernels
@pytest.mark.parametrize("op", sorted(OPS))
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("inputs", ["random", "real"])
def test_every_op_packed_equals_simulated(op, stride, inputs, seed):
    C = 20  # not a multiple of 16 or 64: masked lanes and padded words are exercised
    module = nn.Sequential(OPS[op](C, stride, BINARY, True))
    _bn_random(module, 1)
    x = torch.randn(4, C, 12, 12) if inputs == "random" else _real_like(4, C, 12)
    calibrate_bn(module, torch.cat([x, torch.randn(60, C, 12, 12)]))
    packed = pack_network(module)
    if op in {"sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"} or (op == "skip_connect" and stride == 2):
        assert packed.counts()["xnor_1x1"] > 0 and packed.counts()["binary_kept_float"] == 0
    _assert_exact(exactness(module, packed, x))


@needs_kernels
@pytest.mark.parametrize("genotype_file", ["darts_v2.json", "pcdarts_cifar.json"])
@pytest.mark.parametrize("reduction,reduction_prev", [(False, False), (False, True), (True, False)])
def test_whole_cells_packed_equal_simulated(genotype_file, reduction, reduction_prev, data_dir, seed):
    genotype = load_genotype(data_dir / genotype_file)
    c_pp, c_p, c = 24, 16, 12
    cell = Cell(genotype, c_pp, c_p, c, reduction, reduction_prev, BINARY)
    _bn_random(cell, 2)

    class TwoInputs(nn.Module):  # the cell under the network's calling convention, one input tensor
        def __init__(self):
            super().__init__()
            self.cell = cell

        def forward(self, x):
            s0 = x[:, :c_pp]
            s1 = x[:, c_pp:c_pp + c_p]
            if reduction_prev:
                s1 = s1[:, :, ::2, ::2]
            return self.cell(s0, s1)

    net = TwoInputs()
    x = _real_like(4, c_pp + c_p, 16)
    calibrate_bn(net, torch.cat([x, torch.randn(60, c_pp + c_p, 16, 16)]))
    _assert_exact(exactness(net, pack_network(net), x))
    _assert_exact(exactness(net, pack_network(net), torch.randn(4, c_pp + c_p, 16, 16)))


@needs_kernels
def test_whole_network_logits_equal_and_file_round_trips(seed):
    net = NetworkCIFAR(DARTS_V2, C=8, layers=5, auxiliary=True)
    _bn_random(net, 3)
    images, _ = sample_images(64)
    calibrate_bn(net, images)
    packed = pack_network(net)
    assert packed.counts()["xnor_1x1"] > 0 and packed.counts()["binary_kept_float"] == 0
    _assert_exact(exactness(net, packed, images[:8]))
    _assert_exact(exactness(net, packed, torch.randn(8, 3, 32, 32)))
    from cpnas.deploy.network import PackedMeta

    meta = PackedMeta(genotype=DARTS_V2.to_dict(), dataset="cifar10", channels=8, layers=5, num_classes=10)
    packed = pack_network(net, meta)
    blob = to_bytes(packed)
    again = load_packed(blob, lambda m: NetworkCIFAR(DARTS_V2, C=m.channels, layers=m.layers, auxiliary=False))
    assert torch.equal(again(images[:4]), packed(images[:4]))
    assert not any(k.endswith(".weight_t") for k in again.body.state_dict())  # the kernel layout is not stored


EMPTY_NODE_CELL = {
    "normal": [["max_pool_3x3", 0, 2], ["max_pool_3x3", 1, 2], ["max_pool_3x3", 0, 3], ["max_pool_3x3", 1, 3],
               ["sep_conv_5x5", 0, 4], ["max_pool_3x3", 1, 4], ["dil_conv_3x3", 0, 5], ["avg_pool_3x3", 2, 5]],
    "normal_concat": [2, 3, 4, 5],
    "reduce": [["avg_pool_3x3", 0, 2], ["sep_conv_5x5", 1, 2], ["dil_conv_3x3", 0, 4], ["sep_conv_3x3", 1, 4],
               ["dil_conv_3x3", 1, 5], ["sep_conv_5x5", 2, 5]],
    "reduce_concat": [2, 3, 4, 5]}
"""A cell a smoke search found: reduction node 3 has no input edge, so an all-zero node (in the default NCHW
layout) enters the concatenation and the next cell's 1×1 convs receive NCHW inputs."""


@needs_kernels
@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_a_cell_with_an_empty_node_deploys_at_any_batch_and_layout(batch, memory_format, seed):
    from cpnas.genotype import Genotype

    net = NetworkCIFAR(Genotype.from_dict(EMPTY_NODE_CELL), C=8, layers=5, auxiliary=False)
    _bn_random(net, 4)
    images, _ = sample_images(64)
    calibrate_bn(net, torch.cat([images, torch.randn(64, 3, 32, 32)]))
    packed = pack_network(net)
    assert packed.counts()["binary_kept_float"] == 0
    x = images[:batch].contiguous(memory_format=memory_format)
    _assert_exact(exactness(net, packed, x))


def _trained_a_little(steps: int = 6) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A small 1-bit DARTS_V2 network after a few Adam steps on labelled test images, BN statistics of the
    trained weights; in eval mode. Returns it and the images and labels."""
    from cpnas.deploy.pair import labelled_images

    net = NetworkCIFAR(DARTS_V2, C=8, layers=5, auxiliary=False)
    images, labels, _ = labelled_images(100, image_size=32)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    net.train()
    for step in range(steps):
        batch = slice(16 * step % 96, 16 * step % 96 + 16)
        logits, _ = net(images[batch])
        loss = nn.functional.cross_entropy(logits, labels[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    calibrate_bn(net, images)
    return net, images, labels


@needs_kernels
@pytest.mark.parametrize("forms", ["memory_format=channels_last,dilated_conv=plain",
                                   "memory_format=contiguous,dilated_conv=space_to_batch"])
def test_a_trained_network_packed_gives_the_simulated_networks_classes_and_logits(forms, monkeypatch, seed):
    """Trained weights, compared with the simulated network as it is evaluated (not a variant with exact depthwise
    sums), in each memory format and dilated-conv form: same classes on every image, logits within the tolerance,
    though the binary depthwise convs' ties (integer sum 0) are many and their float signs go both ways."""
    from cpnas import dispatch
    from cpnas.deploy.measure import agreement

    monkeypatch.setenv(dispatch.FORCE_ENV, forms + ",sign=torch")
    dispatch.reset()
    net, images, labels = _trained_a_little()
    packed = pack_network(net)
    layout = torch.channels_last if "channels_last" in forms else torch.contiguous_format
    with torch.no_grad():
        simulated = net.eval().to(memory_format=layout)(images.contiguous(memory_format=layout))[0]
    out = packed(images)
    assert torch.equal(out.argmax(1), simulated.argmax(1))
    assert (out - simulated).abs().max() <= LOGIT_TOLERANCE
    report = exactness(net, packed, images[:8])
    _assert_exact(report)
    assert 0 < report["depthwise_ties_negative"] < report["depthwise_ties"]
    agreed = agreement(net, packed, images, labels)
    assert agreed["classes_identical"] and agreed["classes_equal"] == 100 and agreed["max_abs_diff"] <= LOGIT_TOLERANCE
    assert agreed["top1_packed"] == agreed["top1_simulated"]


@needs_kernels
@pytest.mark.parametrize("precision", ["binary*", "binary**"])
def test_table2_variants_keep_real_input_convs_in_float(precision, seed):
    """'*' / '**' (Table 2): convs with real inputs keep their simulated float form; the rest is packed.

    Not checked for exactness: a real-input depthwise conv reading a packed 1×1's output (values on a
    lattice scale·d + bias) has exact ties (Σ±d = 0 and Σ±1 = 0 at border pixels, ~0.7 % of the next
    conv's integers at C = 8) that both nets resolve by float rounding, each its own way.
    """
    from cpnas.deploy.packed import PackedDepthwise

    net = NetworkCIFAR(DARTS_V2, C=8, layers=5, auxiliary=False, precision=get_precision(precision))
    images, _ = sample_images(64)
    calibrate_bn(net, images)
    packed = pack_network(net)
    assert packed.counts()["xnor_1x1"] > 0
    assert any(isinstance(m, PackedDepthwise) and not m.binarize_input for m in packed.modules())
    assert (packed.counts()["binary_kept_float"] > 0) == (precision == "binary**")
    assert packed(images[:2]).shape == (2, 10)


@needs_kernels
def test_exactness_fails_when_one_weight_bit_flips(seed):
    """The check can fail: flipping one stored sign bit changes the integers and the logits."""
    net = NetworkCIFAR(DARTS_V2, C=8, layers=5, auxiliary=False)
    images, _ = sample_images(64)
    calibrate_bn(net, images)
    packed = pack_network(net)
    conv = next(m for m in packed.modules() if isinstance(m, PackedConv1x1))
    conv.weight_bits[0, 0] ^= 1
    conv._layout()
    report = exactness(net, packed, images[:8])
    assert not report["integers_equal"] and not report["exact"]


def test_simulated_path_works_and_packing_says_how_to_fix_a_missing_compiler(monkeypatch, seed):
    net = NetworkCIFAR(DARTS_V2, C=8, layers=5, auxiliary=False).eval()
    monkeypatch.setattr(kernels, "_ext", None)
    monkeypatch.setattr(kernels, "toolchain_missing", lambda: "a C++ compiler (g++)")
    with pytest.raises(CpnasError, match="apt-get install g\\+\\+ ninja-build.*pip install ninja"):
        kernels.extension()
    assert simulate(net, torch.randn(2, 3, 32, 32)).shape == (2, 10)  # the simulated 1-bit net needs no compiler
    packed = pack_network(net)  # packing itself is pure PyTorch
    with pytest.raises(CpnasError, match="simulated 1-bit network"):
        packed(torch.randn(1, 3, 32, 32))


# --- command line -----------------------------------------------------------------------------------------------


def test_cli_bad_genotype_or_checkpoint_is_one_line_exit_2(tmp_path, data_dir, capsys):
    from cpnas.cli import main

    assert main(["deploy", "--genotype", str(tmp_path / "missing.json"), "--json"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cpnas deploy: error:")
    if kernels.toolchain_missing() is None:
        assert main(["deploy", "--genotype", str(data_dir / "darts_v2.json"), "--checkpoint", str(tmp_path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "checkpoint.pt" in err[0]


@needs_kernels
def test_cli_json_reports_exact_and_the_figures(data_dir, capsys):
    from cpnas.cli import main

    assert main(["deploy", "--genotype", str(data_dir / "darts_v2.json"), "--scale", "smoke", "--json",
                 "--no-compile", "--agreement-images", "30"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["exact"] is True and report["max_abs_diff"] <= LOGIT_TOLERANCE
    agreed = report["agreement"]
    assert agreed["images"] == 30 and agreed["classes_identical"] and agreed["max_abs_diff"] <= LOGIT_TOLERANCE
    assert 0 <= agreed["top1_packed"] == agreed["top1_simulated"] <= 100
    assert set(report["latency_ms"]) == {"fp32", "fp32_eager", "simulated", "packed", "packed_op_by_op"}
    assert report["cells_planned"] == "5 of 5" and report["exactness"]["images"]["cells_planned_equal_op_by_op"]
    assert report["speedup_end_to_end"] == report["latency_ms"]["fp32"] / report["latency_ms"]["packed"]
    assert report["fp32_baseline"] in {"eager channels_last", "torch.compile"}
    assert report["machine"]["depthwise_path"].endswith("int8")
    assert all(v > 0 for v in report["latency_ms"].values())
    assert set(report["kernel_1x1_speedup"]) == {"64", "128", "256", "512"}
    assert report["file"]["file_bytes"] > 0 and report["network"]["channels"] == 4


@needs_kernels
def test_imagenet_network_packed_equals_simulated(seed):
    """The ImageNet network: three real stem convs, a factorized reduce on the first cell's input."""
    from cpnas.config import get_config
    from cpnas.deploy.pair import build_pair

    binary, _, info = build_pair(DARTS_V2, get_config("smoke"), dataset="imagenet")
    size = info["image_size"]
    calibrate_bn(binary, torch.randn(64, 3, size, size))
    packed = pack_network(binary)
    assert packed.counts()["xnor_1x1"] > 0 and packed.counts()["binary_kept_float"] == 0
    _assert_exact(exactness(binary, packed, torch.randn(4, 3, size, size)))


# --- the packed model file ---------------------------------------------------------------------------------------


def _small_packed():
    from cpnas.deploy.network import PackedMeta

    net = NetworkCIFAR(DARTS_V2, C=8, layers=5, auxiliary=False)
    _bn_random(net, 5)
    images, _ = sample_images(64)
    calibrate_bn(net, images)
    meta = PackedMeta(genotype=DARTS_V2.to_dict(), dataset="cifar10", channels=8, layers=5, num_classes=10)
    return pack_network(net, meta), images


@needs_kernels
def test_model_file_round_trips_and_cli_classifies_a_folder(tmp_path, capsys, seed):
    from PIL import Image

    from cpnas.cli import main

    packed, images = _small_packed()
    path = tmp_path / "model.cpnas"
    path.write_bytes(to_bytes(packed))
    again = load_packed(path)
    assert again.meta == packed.meta
    assert torch.equal(again(images[:4]), packed(images[:4]))
    folder = tmp_path / "images" / "sub"
    folder.mkdir(parents=True)
    raw = ((images[:3] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    for i, im in enumerate(raw):
        Image.fromarray(im.permute(1, 2, 0).numpy()).save(folder / f"{i}.png")
    assert main(["deploy", "--load", str(path), "--images", str(tmp_path / "images"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["images"] == 3 and [p["path"] for p in res["predictions"]] == sorted(str(f) for f in folder.iterdir())
    expected = packed(images[:3]).argmax(1).tolist()  # PNG round trip of the normalized images is exact
    assert [p["class_index"] for p in res["predictions"]] == expected
    assert res["path"]["depthwise"].endswith("int8")


@needs_kernels
@pytest.mark.parametrize("damage", ["truncated", "header_cut", "short", "magic", "version", "flipped", "empty"])
def test_a_bad_model_file_is_one_line_exit_2(damage, tmp_path, capsys, seed):
    from cpnas.cli import main
    from cpnas.deploy import modelfile

    blob = bytearray(to_bytes(_small_packed()[0]))
    damaged = {"truncated": blob[:-100], "header_cut": blob[:40], "short": blob[:5], "empty": b"",
               "magic": b"X" + blob[1:], "version": blob[:8] + (modelfile.VERSION + 1).to_bytes(4, "little") + blob[12:],
               "flipped": blob[:-7] + bytes([blob[-7] ^ 1]) + blob[-6:]}[damage]
    path = tmp_path / "bad.cpnas"
    path.write_bytes(bytes(damaged))
    (tmp_path / "img").mkdir()
    with pytest.raises(CpnasError, match="bad.cpnas"):
        load_packed(path)
    assert main(["deploy", "--load", str(path), "--images", str(tmp_path / "img")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cpnas deploy: error:") and "bad.cpnas" in err[0]


def test_load_without_images_or_images_without_load_is_refused(tmp_path, capsys):
    from cpnas.cli import main

    assert main(["deploy", "--load", str(tmp_path / "m.cpnas")]) == 2
    assert "--images" in capsys.readouterr().err
    assert main(["deploy", "--images", str(tmp_path)]) == 2
    assert "--load" in capsys.readouterr().err


def test_notebook_06_shows_the_timings_make_bench_recorded_for_the_same_cell(tmp_path, monkeypatch):
    """Timings taken now change on every run; the recorded ones (with their run's date) keep 06 reproducible.
    Another cell or scale than the recorded one is timed afresh."""
    from pathlib import Path

    from cpnas.deploy import report
    from cpnas.io import read_json, write_json

    committed = read_json(Path(__file__).resolve().parents[1] / report.BENCH_FILE)
    monkeypatch.setenv("CPNAS_HOME", str(tmp_path))  # no CP-NAS search here: the found cell is DARTS_V2
    genotype, label = report.found_cell("cpu")
    section = json.loads(json.dumps(committed["deploy"]))
    section["genotype"] = label
    section["scale"]["network"]["genotype"] = genotype.to_dict()
    section["paper"]["network"]["genotype"] = genotype.to_dict()
    write_json(tmp_path / report.BENCH_FILE, {"date": "the bench's date", "deploy": section})
    monkeypatch.setattr(report, "bench", lambda scale, **kw: {"measured now": scale})
    shown = report.recorded_or_bench("cpu")
    assert shown["measured"] == "`make bench` of the bench's date (results/bench/bench.json)"
    assert "Measured by `make bench` of the bench's date" in report.markdown(shown)
    assert report.recorded_or_bench("smoke") == {"measured now": "smoke", "measured": "this notebook, now"}
    section["scale"]["network"]["genotype"] = {"normal": "another cell under the same label"}
    write_json(tmp_path / report.BENCH_FILE, {"date": "the bench's date", "deploy": section})
    assert report.recorded("cpu") is None
