"""The benchmark runs and reports both ratios (no timing is asserted: speed lives in `make bench`)."""

import pytest
import torch

from cpnas import bench, stepbench


def test_bench_path_uses_every_op_but_none():
    path = stepbench.bench_path()
    assert "none" not in path.normal + path.reduce
    assert len(set(path.normal)) == 7


def test_bench_writes_the_ratios_and_the_chosen_forms(tmp_path, monkeypatch):
    monkeypatch.setenv("CPNAS_CACHE", str(tmp_path / "cache"))
    from cpnas.binary import ReLUConv2d

    def fake_step(net, *a, **k):  # the structure, not the speed: 0.4 s marks a net with DARTS' ReLU convs
        return 0.4 if any(isinstance(m, ReLUConv2d) for m in net.modules()) else 0.5

    monkeypatch.setattr(stepbench, "_median_step", fake_step)
    real_training = stepbench.training_throughput
    monkeypatch.setattr(stepbench, "training_throughput",
                        lambda device="cpu": real_training(channels=(8,), steps=1, warmup=0, device=device))
    res = bench.run(tmp_path, scale="smoke", batch=2, images=8)
    a = res["throughput"]
    assert a["binary_over_real_step_time"] == 1.0 and a["speedup_vs_naive"] == 1.0
    # the Parent row is the Parent the search trains: ReLU before its conv blocks (search.parent_relu)
    assert a["parent_relu"] and a["binary_over_parent_step_time"] == 0.5 / 0.4
    assert a["naive_binary_memory_format"] == "contiguous" and a["naive_binary_img_per_s"] == 4.0
    if torch.get_num_threads() > 1:  # and once more at one thread, the threads restored after it
        assert res["throughput_1thread"]["threads"] == 1 and res["throughput_1thread"]["speedup_vs_naive"] == 1.0
        assert "At 1 thread" in (tmp_path / "bench.md").read_text() and res["threads"] == torch.get_num_threads()
    assert res["training"]["C8"]["img_per_s_per_thread"] > 0
    assert res["search"]["cpnas_over_pcdarts_total"] > 0
    # the dispatch measured afresh and recorded its choices: the dilated convs of (c) and the formats of (a)
    assert {"dilated_conv", "memory_format"} <= set(res["kernel_forms"])
    assert res["kernels"]["dil_conv_3x3"]["chosen"] in ("plain", "space_to_batch")
    md = (tmp_path / "bench.md").read_text()
    for text in ("1-bit / 32-bit step time", "32-bit Parent as searched (ReLU", "CP-NAS / PC-DARTS projected search time", "ours / plain 1-bit speed",
                 "form chosen", "images/s per thread", "AVX-512"):
        assert text in md
    assert (tmp_path / "bench.json").is_file()


def test_naive_net_computes_what_ours_computes(force_forms):
    """The plain baseline is the same function as our 1-bit net (only the implementation differs).

    The naive net's dilated convs are plain convolutions: ours are forced to the plain form too,
    since the space-to-batch form sums in another order and a sign flips on last-bit differences.
    """
    import torch

    force_forms(dilated_conv="plain")
    from cpnas.binary import BINARY
    from cpnas.networks import SearchNetwork

    path = stepbench.bench_path()
    nets = []
    for prec in (BINARY, stepbench.NAIVE_BINARY):
        torch.manual_seed(0)
        nets.append(SearchNetwork(8, 10, 3, (1, 2), prec).eval())
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(nets[0](x, path), nets[1](x, path), rtol=1e-4, atol=1e-4)


def test_profile_lists_the_top_operators_of_each_net():
    p = stepbench.operator_times(threads=1, batch=2, steps=1, top=3, channels=4, layers=3)
    assert set(p["nets"]) == {"binary", "real", "parent"}
    for v in p["nets"].values():
        assert len(v["top"]) == 3 and v["self_cpu_s"] > 0
        assert v["top"][0]["self_cpu_s"] >= v["top"][-1]["self_cpu_s"]
    md = stepbench.operator_times_markdown(p)
    assert md.count("\n| ") == 3 + 2 and "32-bit Parent as searched" in md


def test_search_projection_times_one_epoch_of_each_kind_of_each_strategys_plan(monkeypatch):
    """(b) names no strategy: it times the first epoch of every kind in each plan and projects over the paper's."""
    from cpnas import searchbench
    from cpnas.config import get_config
    from cpnas.genotype import DARTS_V2
    from cpnas.strategy_base import STRATEGIES, Strategy

    ran: dict[str, list[int]] = {}

    class Plain(Strategy):
        name = "plain-toy"

        @classmethod
        def plan(cls, cfg):
            return [{"e": e} for e in range(3 if cfg.scale == "smoke" else 10)], []

        def run_epoch(self, epoch):
            ran.setdefault(self.name, []).append(epoch)
            return {}

        def genotype(self):
            return DARTS_V2

    class TwoKinds(Plain):
        """Two cheap epochs, then dear ones; its own cost is in its records."""

        name = "two-kinds-toy"
        needs_arch_split = True

        @classmethod
        def plan(cls, cfg):
            return [{"e": e, "dear": e >= 2} for e in range(4 if cfg.scale == "smoke" else 8)], []

        @classmethod
        def epoch_kind(cls, step):
            return "dear" if step["dear"] else "cheap"

        @classmethod
        def epoch_seconds(cls, record):
            return record["seconds"]

        def run_epoch(self, epoch):
            super().run_epoch(epoch)
            assert self.ctx.arch_loader is not None
            return {"seconds": 3.0 if self.schedule()[epoch]["dear"] else 1.0}

    for cls in (Plain, TwoKinds):
        monkeypatch.setitem(STRATEGIES, cls.name, cls)  # registered for this test only
    res = searchbench.search_epochs(scale="smoke", images=8, strategies=("plain-toy", "two-kinds-toy"))
    assert ran == {"plain-toy": [0], "two-kinds-toy": [0, 2]}
    assert res["strategies"] == {"plain-toy": {"": 10}, "two-kinds-toy": {"cheap": 2, "dear": 6}}
    assert res["two-kinds-toy_cheap_epoch_s"] == 1.0 and res["two-kinds-toy_dear_epoch_s"] == 3.0
    paper = get_config("paper").search
    scale_up = paper.train_fraction * searchbench.CIFAR_TRAIN / 8
    assert res["projected_two-kinds-toy_s"] == pytest.approx(scale_up * (2 * 1.0 + 6 * 3.0))
    assert res["projected_plain-toy_s"] == pytest.approx(scale_up * 10 * res["plain-toy_epoch_s"])
    assert res["plain-toy_over_two-kinds-toy_total"] == pytest.approx(
        res["projected_plain-toy_s"] / res["projected_two-kinds-toy_s"])
    md = "\n".join(searchbench.search_markdown(res))
    assert "| two-kinds-toy cheap | 1.0 |" in md and "(2 cheap + 6 dear epochs)" in md and "(10 epochs)" in md
