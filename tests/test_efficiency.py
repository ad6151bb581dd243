"""Efficiency accounting (§3.4, Table 3): hand-counted goldens, invariants, Table 3, the CLI.

Goldens are literal numbers with the hand computation beside them; a change in
any of them means either the counting or the network definition changed.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cpnas.binary import BINARY, PRECISIONS, BinaryConv2d
from cpnas.cli import main
from cpnas.efficiency import BINARY_OPS_PER_FLOP, profile, profile_arch, profile_genotype
from cpnas.errors import CpnasError
from cpnas.genotype import Genotype, load_genotype
from cpnas.networks import Cell, NetworkCIFAR, SearchNetwork
from cpnas.ops import SepConv
from cpnas.space import SampledPath


@pytest.fixture(scope="module")
def darts_v2(data_dir):
    return load_genotype(data_dir / "darts_v2.json")


def tiny_genotype() -> Genotype:
    """Normal cell: n2 = sep3x3(n0) + skip(n1); n3 = maxpool(n2) + dil3x3(n1); output [n2, n3]."""
    return Genotype.from_dict({
        "normal": [["sep_conv_3x3", 0, 2], ["skip_connect", 1, 2], ["max_pool_3x3", 2, 3], ["dil_conv_3x3", 1, 3]],
        "normal_concat": [2, 3],
        "reduce": [["max_pool_3x3", 0, 2], ["skip_connect", 1, 2]],
        "reduce_concat": [2],
    })


# --- hand-counted goldens ----------------------------------------------------------------------

def test_single_binary_conv_golden():
    p = profile(BinaryConv2d(4, 8, 3, padding=1, bias=False), (4, 8, 8))
    # weight 8·4·3·3 = 288 (1 bit each); output 8×8×8 = 512 elements × 4·3·3 = 36 MACs each = 18 432
    assert (p.params, p.binary_params, p.real_params) == (288, 288, 0)
    assert p.memory_bits == 288
    assert (p.real_macs, p.binary_macs) == (0, 18_432)
    assert p.flops == 18_432 / 64 == 288


def test_single_real_conv_golden():
    p = profile(nn.Conv2d(4, 8, 3, padding=1, bias=True), (4, 8, 8))
    # weight 288 + bias 8 = 296 real params = 9 472 bits; 18 432 real MACs (bias adds ignored)
    assert (p.params, p.binary_params, p.real_params, p.memory_bits) == (296, 0, 296, 9_472)
    assert (p.real_macs, p.binary_macs, p.flops) == (18_432, 0, 18_432)


def test_binary_conv_is_never_counted_as_real():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4),
                        BinaryConv2d(4, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))
    p = profile(net, (3, 8, 8))
    binary_conv = net[2]
    assert p.binary_params == binary_conv.weight.numel() == 288
    # real: stem conv 3·4·9 = 108 + BN (4 + 8)·2 = 24 → 132
    assert p.real_params == 132
    assert p.memory_bits == 288 + 32 * 132
    # real MACs: 4·64 outputs × 27 = 6 912; binary: 8·64 outputs × 36 = 18 432
    assert (p.real_macs, p.binary_macs) == (6_912, 18_432)
    kinds = {r.name: r.kind for r in p.layers}
    assert kinds == {"0": "real", "1": "norm", "2": "binary", "3": "norm"}


def test_sep_conv_binary_golden():
    # SepConv(C=4, k=3, stride 1) = 2 × (depthwise 3×3 → pointwise 1×1 → BN), on 4×8×8:
    #   depthwise: weight 4·1·9 = 36, MACs 4·64 outputs × 9 = 2 304
    #   pointwise: weight 4·4 = 16,   MACs 4·64 outputs × 4 = 1 024
    #   BN: 2·4 = 8 real
    # → binary params 2·(36+16) = 104, real 2·8 = 16, binary MACs 2·(2 304+1 024) = 6 656
    p = profile(SepConv(4, 4, 3, 1, 1, BINARY), (4, 8, 8))
    assert (p.params, p.binary_params, p.real_params) == (120, 104, 16)
    assert p.memory_bits == 104 + 32 * 16 == 616
    assert (p.real_macs, p.binary_macs) == (0, 6_656)


def test_sep_conv_stride2_golden():
    # stride 2 on the first depthwise: every output is 4×4 → depthwise 4·16·9 = 576, pointwise 4·16·4 = 256
    p = profile(SepConv(4, 4, 3, 2, 1, BINARY), (4, 8, 8))
    assert p.binary_macs == 2 * (576 + 256) == 1_664


def test_real_input_binary_conv_counts_binary_weights_and_real_macs():
    # Table 2 '*': the first depthwise conv keeps real inputs → its 2 304 MACs are 1-bit × 32-bit,
    # counted as real; its 36 weights stay 1-bit. Params and memory are those of the plain binary SepConv.
    p = profile(SepConv(4, 4, 3, 1, 1, PRECISIONS["binary*"]), (4, 8, 8))
    assert (p.binary_params, p.real_params, p.memory_bits) == (104, 16, 616)
    assert (p.real_macs, p.binary_macs) == (2_304, 6_656 - 2_304)
    assert [r.kind for r in p.layers if r.kind.startswith("binary")][0] == "binary-weight"


def test_cell_golden():
    # Normal cell, inputs 8×8×8 (s0, s1), C = 4:
    #   pre0, pre1: 1×1 binary conv 8→4: weight 32, MACs 4·64 × 8 = 2 048; BN 8 real   (×2)
    #   sep_conv_3x3 (0→2): 104 binary, 16 real, 6 656 binary MACs (see the SepConv golden)
    #   skip_connect (1→2), max_pool_3x3 (2→3): nothing
    #   dil_conv_3x3 (1→3): depthwise 36 (2 304 MACs) + pointwise 16 (1 024 MACs) binary, BN 8 real
    # → binary params 32+32+104+36+16 = 220, real 8+8+16+8 = 40,
    #   binary MACs 2 048+2 048+6 656+2 304+1 024 = 14 080, memory 220 + 32·40 = 1 500 bits
    cell = Cell(tiny_genotype(), 8, 8, 4, reduction=False, reduction_prev=False, precision=BINARY)
    p = profile(cell, (8, 8, 8), forward_args=(torch.zeros(1, 8, 8, 8),))
    assert (p.params, p.binary_params, p.real_params) == (260, 220, 40)
    assert p.memory_bits == 1_500
    assert (p.real_macs, p.binary_macs) == (0, 14_080)
    assert p.flops == 14_080 / BINARY_OPS_PER_FLOP == 220


# --- invariants and cross-checks ---------------------------------------------------------------

def test_macs_agree_with_torch_flop_counter(darts_v2, seed):
    """Total MACs equal half of FlopCounterMode's FLOPs (it counts 2 per MAC) on a real CPU forward."""
    net = NetworkCIFAR(darts_v2, C=8, layers=3, auxiliary=False, precision=BINARY).eval()
    p = profile(net, (3, 16, 16))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.zeros(1, 3, 16, 16))
    assert 2 * (p.real_macs + p.binary_macs) == counter.get_total_flops()


def test_params_match_darts_count(darts_v2):
    """DARTS V2 at C=36, 20 cells: DARTS' utils.count_parameters_in_MB gives 3.349342 M."""
    assert profile_genotype(darts_v2, channels=36, layers=20, precision="real").params == 3_349_342


def test_precision_changes_bits_not_params(darts_v2):
    real = profile_genotype(darts_v2, channels=16, layers=5, precision="real")
    binary = profile_genotype(darts_v2, channels=16, layers=5, precision="binary")
    assert real.params == binary.params
    assert real.real_macs + real.binary_macs == binary.real_macs + binary.binary_macs
    assert real.binary_params == 0 and binary.binary_params > 0
    assert binary.memory_bits < real.memory_bits


def test_auxiliary_tower_excluded_by_default(darts_v2):
    with_aux = NetworkCIFAR(darts_v2, C=8, layers=3, auxiliary=True, precision=BINARY)
    aux_params = sum(p.numel() for p in with_aux.auxiliary.parameters())
    default = profile(with_aux, (3, 32, 32))
    assert all(not r.name.startswith("auxiliary") for r in default.layers)
    included = profile(with_aux, (3, 32, 32), include_auxiliary=True)
    assert included.params == default.params + aux_params
    aux = {r.name: r for r in included.layers if r.name.startswith("auxiliary")}
    assert aux["auxiliary.classifier"].real_macs == 768 * 10  # per sample, although it ran on a batch of 2
    assert included.real_macs == default.real_macs + sum(r.real_macs for r in aux.values())


def test_profile_leaves_the_model_unchanged(darts_v2):
    net = NetworkCIFAR(darts_v2, C=8, layers=3, auxiliary=True, precision=BINARY).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    profile(net, (3, 32, 32))
    profile(net, (3, 32, 32), include_auxiliary=True)
    assert all(m.training for m in net.modules())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert not any(m._forward_hooks for m in net.modules())


def test_search_network_counts_only_the_sampled_path():
    net = SearchNetwork(C=4, layers=3, reduction_layers=(1,), precision=BINARY)
    ops = ("sep_conv_3x3",) + ("none",) * 13
    path = SampledPath(normal=ops, reduce=("max_pool_3x3",) * 14)
    p = profile(net, (3, 8, 8), forward_args=(path,))
    sampled = [net.stem, net.classifier] + [m for cell in net.cells for m in (cell.pre0, cell.pre1)]
    sampled += [cell.edge_ops[0]["sep_conv_3x3"] for cell in net.cells if not cell.reduction]
    expected = sum(q.numel() for m in sampled for q in m.parameters())
    assert p.params == expected < sum(q.numel() for q in net.parameters())


def test_exclude_bn():
    net = nn.Sequential(BinaryConv2d(4, 8, 3, bias=False), nn.BatchNorm2d(8))
    p = profile(net, (4, 8, 8), include_norm=False)
    assert (p.params, p.memory_bits) == (288, 288)
    assert profile(net, (4, 8, 8)).without_norm() == p


# --- WRN-22 and Table 3 ------------------------------------------------------------------------

def test_wrn22_matches_table3_within_half_a_percent():
    p = profile_arch("wrn22")
    assert p.params == pytest.approx(4.33e6, rel=5e-3)  # Table 1
    assert p.memory_mbit == pytest.approx(138.27, rel=5e-3)  # Table 3
    assert p.flops_m == pytest.approx(647.70, rel=5e-3)  # Table 3
    assert p.binary_params == 0 and p.binary_macs == 0
    # Golden: conv+FC 4 321 482 + BN 5 504 params; conv+FC MACs 647 694 848 (see cpnas.wrn)
    assert (p.params, p.real_macs) == (4_326_986, 647_694_848)
    assert profile_arch("wrn22", False).params == 4_321_482


def test_wrn22_binary_readings_golden():
    a = profile_arch("wrn22-binary")
    # real: stem 3·64·9 = 1 728, FC 256·10+10 = 2 570, BN 5 504; the other 4 317 184 weights are 1-bit
    assert (a.binary_params, a.real_params) == (4_317_184, 9_802)
    # real MACs: stem 1 728·1 024 = 1 769 472 + FC 2 560; binary: 647 694 848 − 1 772 032
    assert (a.real_macs, a.binary_macs) == (1_772_032, 645_922_816)
    b = profile_arch("wrn22-binary-real-shortcut")
    # + the two 1×1 shortcuts 64·128 + 128·256 = 40 960 weights real, 2·2 097 152 MACs real
    assert b.real_params == a.real_params + 40_960
    assert b.real_macs == a.real_macs + 4_194_304
    # BN excluded, this reading's memory is within 0.3 % of Table 3's WRN-22 (BONN) 5.71 Mbit
    assert profile_arch("wrn22-binary-real-shortcut", False).memory_mbit == pytest.approx(5.71, rel=3e-3)


def test_wrn22_reference_ratios():
    assert profile_arch("wrn22").memory_saving() == 1.0 == profile_arch("wrn22").speedup()
    a = profile_arch("wrn22-binary")
    assert a.speedup() == pytest.approx(647_694_848 / (1_772_032 + 645_922_816 / 64))


def test_darts_v2_paper_sizes_snapshot(darts_v2):
    # Snapshot (larq-style) of the CIFAR-10 evaluation network of DARTS V2 at C=56, 10 cells, 1-bit cells.
    p = profile_genotype(darts_v2, size="small")
    assert (p.params, p.binary_params, p.real_params) == (3_779_674, 3_736_824, 42_850)
    assert (p.real_macs, p.binary_macs) == (4_653_824, 595_359_744)


@pytest.fixture(scope="module")
def table3_darts_v2(darts_v2):
    from cpnas.tables import table3

    return table3(darts_v2, genotype_name="DARTS V2")


def test_table3(table3_darts_v2):
    from cpnas.tables import PAPER_TABLE3, TABLE3_COLUMNS

    df = table3_darts_v2
    assert tuple(df.columns) == TABLE3_COLUMNS
    paper = df[df["source"] == "paper"]
    assert list(paper["architecture"]) == list(PAPER_TABLE3)
    for _, row in paper.iterrows():
        assert row["memory (Mbit)"] == PAPER_TABLE3[row["architecture"]]["memory_mbit"]
        assert row["memory excl. BN (Mbit)"] is None  # measured only for our rows
    ours = df[df["source"] == "ours"].set_index("architecture")
    assert set(df["source"]) == {"paper", "ours"}
    assert ours.loc["WRN-22", "memory saving"] == 1.0
    assert ours.loc["WRN-22", "FLOPs (M)"] == pytest.approx(647.70, rel=5e-3)
    assert ours.loc["CP-NAS (Small)", "memory (Mbit)"] == round(3_736_824 / 1e6 + 32 * 42_850 / 1e6, 2)
    assert set(ours["compare with"]) <= set(PAPER_TABLE3)


def test_table3_chart(table3_darts_v2):
    from matplotlib.figure import Figure

    from cpnas.plots_efficiency import table3_chart

    fig = table3_chart(table3_darts_v2)
    assert isinstance(fig, Figure) and len(fig.axes) == 2


def test_missing_search_genotype_names_the_make_target(tmp_path, monkeypatch):
    from cpnas.tables import resolve_genotype

    monkeypatch.setenv("CPNAS_HOME", str(tmp_path))
    with pytest.raises(CpnasError, match="make reproduce-fig5 SCALE=smoke"):
        resolve_genotype(None, "smoke")
    target = tmp_path / "results" / "smoke" / "search" / "cpnas" / "seed0" / "genotype.json"
    tiny_genotype().save(target)
    assert resolve_genotype(None, "smoke") == tiny_genotype()


# --- CLI ---------------------------------------------------------------------------------------

def test_cli_json(capsys, data_dir):
    assert main(["profile", "--arch", "wrn22", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("params", "binary_params", "real_params", "memory_mbit", "real_macs", "binary_macs", "flops_m"):
        assert key in out
    assert out["params"] == 4_326_986
    assert main(["profile", "--genotype", str(data_dir / "darts_v2.json"), "--size", "small", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["channels"], out["layers"], out["binary_params"]) == (56, 10, 3_736_824)


def test_cli_table(capsys):
    assert main(["profile", "--arch", "wrn22-binary"]) == 0
    out = capsys.readouterr().out
    assert "total" in out and "groups.2" in out and "speedup" in out


@pytest.mark.parametrize("content", ['{"normal": [', '[1, 2]', '{"normal": [["conv_9x9", 0, 2]], "reduce": []}'])
def test_cli_corrupt_genotype_is_one_line_exit_2(capsys, tmp_path, content):
    bad = tmp_path / "genotype.json"
    bad.write_text(content)
    assert main(["profile", "--genotype", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cpnas profile: error:") and "\n" not in err and "Traceback" not in err


def test_cli_missing_genotype_and_bad_combinations(capsys, tmp_path, data_dir):
    assert main(["profile", "--genotype", str(tmp_path / "nope.json")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["profile", "--arch", "wrn22", "--size", "large"]) == 2
    assert "only applies to --genotype" in capsys.readouterr().err
    assert main(["profile", "--genotype", str(data_dir / "darts_v2.json"), "--channels", "0"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    with pytest.raises(SystemExit) as exc:  # argparse: exactly one of --arch / --genotype
        main(["profile", "--arch", "wrn22", "--genotype", str(data_dir / "darts_v2.json")])
    assert exc.value.code == 2


def test_final_cell_readings_from_a_search(tmp_path):
    """Both ⚑ readings of Alg. 1's last round, profiled at the paper's sizes."""
    from cpnas.config import get_config
    from cpnas.efficiency import PAPER_PARAMS_M, final_cell_readings
    from cpnas.search import run_search

    cfg = get_config("smoke", {"search.layers": 3, "search.reduction_layers": "1", "search.T": 1,
                               "data.synthetic_train": 400, "search.train_fraction": 0.05,
                               "search.score_fraction": 0.05})
    run_search("cpnas", cfg, dataset="synthetic", out=tmp_path / "s", device="cpu")
    df = final_cell_readings([tmp_path / "s", tmp_path / "missing"]).set_index("reading")
    assert list(df.index) == ["keep_all", "top2"]
    assert df.loc["top2", "edges_normal"] <= 8 <= 14 >= df.loc["keep_all", "edges_normal"]
    for size in PAPER_PARAMS_M:
        assert df.loc["top2", f"params_m_{size}"] <= df.loc["keep_all", f"params_m_{size}"]
