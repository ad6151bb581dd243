"""PC-DARTS on the 1-bit supernet (cpnas.pcdarts): relaxation, updates, derivation, resume.

Small fake loaders (no cpnas.data), 8×8 images and the ``smoke`` configuration cut
to 3 cells (a normal cell and two reduction cells, so that both cell kinds, the
stride-2 edges and the factorized-reduce preprocessing all run) keep the file fast:
the supernet's cost on a CPU is per-op overhead, so fewer cells and passes is what
counts. The oracles (channel shuffle, the partial-channel mixed edge,
the top-2 derivation) are written here from the PC-DARTS paper and its official
``model_search.py``, independently of the library code they check.
"""

from __future__ import annotations

import io
import json
import math

import pytest
import torch
from torch import nn

from cpnas.config import get_config
from cpnas.errors import CpnasError
from cpnas.genotype import cell_edges
from cpnas.ops import PRIMITIVES
from cpnas.partialchannel import PartialChannelNetwork, channel_shuffle, derive_genotype, normalize_edges
from cpnas.alphas import alpha_movement
from cpnas.pcdarts import PCDARTS
from cpnas.space import CELL_KINDS
from cpnas.strategy_base import SearchContext, get_strategy

NUM_CLASSES = 10


class FakeLoader:
    """Fixed random images; ``set_epoch(e)`` picks the shuffle, as cpnas.data's loaders do."""

    def __init__(self, n: int, batch_size: int, seed: int, size: int = 8) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 3, size, size, generator=g)
        self.y = torch.randint(NUM_CLASSES, (n,), generator=g)
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0
        self.epochs_seen: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.epochs_seen.append(epoch)

    def __len__(self) -> int:
        return math.ceil(self.x.shape[0] / self.batch_size)

    def __iter__(self):
        order = torch.randperm(self.x.shape[0], generator=torch.Generator().manual_seed(1000 * self.seed + self.epoch))
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            yield self.x[idx], self.y[idx]


SMALL = {"search.layers": 3, "search.reduction_layers": (1, 2)}


def make_context(overrides: dict | None = None, *, n_train: int = 16, n_arch: int = 8, batch: int = 8) -> SearchContext:
    cfg = get_config("smoke", {**SMALL, "search.pc_batch_size": batch, **(overrides or {})})
    arch = FakeLoader(n_arch, batch, seed=2)
    return SearchContext(cfg=cfg, device=torch.device("cpu"), train_loader=FakeLoader(n_train, batch, seed=1),
                         score_loader=arch, num_classes=NUM_CLASSES, seed=0, beta_p=0.0, arch_loader=arch)


def arch_snapshot(strat: PCDARTS) -> list[torch.Tensor]:
    return [p.detach().clone() for p in strat.arch_parameters()]


def net_snapshot(strat: PCDARTS) -> list[torch.Tensor]:
    return [p.detach().clone() for p in strat.net.parameters()]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


# --- registry, schedule, configuration ------------------------------------------------


def test_registered_under_pcdarts():
    assert get_strategy("pcdarts") is PCDARTS


def test_schedule_has_warmup_then_arch_updates():
    strat = PCDARTS(make_context({"search.pc_epochs": 4, "search.pc_warmup_epochs": 2}))
    assert strat.schedule() == [{"epoch": 0, "arch_updates": False}, {"epoch": 1, "arch_updates": False},
                                {"epoch": 2, "arch_updates": True}, {"epoch": 3, "arch_updates": True}]
    assert strat.total_epochs == 4


def test_channels_not_divisible_by_k_is_a_clear_error():
    with pytest.raises(CpnasError, match="pc_partial_k"):
        PCDARTS(make_context({"search.init_channels": 6}))


def test_arch_parameters_shapes_and_init():
    strat = PCDARTS(make_context())
    n = len(cell_edges(4))
    for kind in CELL_KINDS:
        assert strat.alphas[kind].shape == (n, len(PRIMITIVES))
        assert strat.betas[kind].shape == (n,)
        assert strat.alphas[kind].abs().max() < 1e-2  # 1e-3·N(0, 1), as DARTS
    # α, β are not network weights: neither the SGD step nor its gradient clipping sees them
    net_ids = {id(p) for p in strat.net.parameters()}
    assert not any(id(p) in net_ids for p in strat.arch_parameters())
    assert {id(p) for g in strat.arch_opt.param_groups for p in g["params"]} == {id(p) for p in strat.arch_parameters()}


# --- partial channels and the mixed edge ----------------------------------------------


def test_channel_shuffle_oracle():
    x = torch.arange(8.0).view(1, 8, 1, 1)
    # groups of 2 channels [0 1][2 3][4 5][6 7] interleaved: one from each group in turn
    assert channel_shuffle(x, 4).flatten().tolist() == [0, 2, 4, 6, 1, 3, 5, 7]


@pytest.mark.parametrize("k", [1, 4])
def test_edge_ops_run_on_one_kth_of_the_channels(k):
    strat = PCDARTS(make_context({"search.init_channels": 8, "search.pc_partial_k": k}))
    for cell in strat.net.cells:
        for ops in cell.edge_ops:
            for name in ("sep_conv_3x3", "dil_conv_5x5"):
                first = ops[name][0][0] if name.startswith("sep") else ops[name][0]
                assert first.in_channels == cell.c // k
            assert ops["max_pool_3x3"][1].num_features == cell.c // k  # the pool's affine-free BN


def test_mixed_edge_matches_partial_channel_oracle():
    """Node 2 of a cell = Σ_{i∈{0,1}} β̃_i · shuffle([Σ_o softmax(α)_o o(x_i[:C/K]), x_i[C/K:]]) (Eq. 2-3)."""
    torch.manual_seed(0)
    strat = PCDARTS(make_context({"search.init_channels": 8}))
    k = strat.pc.pc_partial_k
    with torch.no_grad():
        for p in strat.arch_parameters():
            p.normal_()
    cell = strat.net.cells[0]  # a normal cell (reductions at 1 and 3)
    cell.train()
    s0 = torch.randn(4, cell.pre0[0].in_channels, 8, 8)
    s1 = torch.randn(4, cell.pre1[0].in_channels, 8, 8)
    with torch.no_grad():
        op_w, edge_w = strat.mixed_weights()["normal"]
        out = cell.forward_mixed(s0, s1, op_w, edge_w)
        c = cell.c
        assert out.shape == (4, 4 * c, 8, 8)
        node2 = 0
        for e, x in enumerate([cell.pre0(s0), cell.pre1(s1)]):
            part = x[:, : c // k]
            mixed = sum(op_w[e, p] * cell.edge_ops[e][name](part) for p, name in enumerate(PRIMITIVES))
            y = torch.cat([mixed, x[:, c // k:]], dim=1)
            y = y.view(4, k, c // k, 8, 8).transpose(1, 2).reshape(4, c, 8, 8)
            node2 = node2 + edge_w[e] * y
    torch.testing.assert_close(out[:, :c], node2)


def test_edge_normalization_sums_to_one_per_node():
    beta = torch.randn(14)
    w = normalize_edges(beta)
    start = 0
    for j in range(2, 6):
        torch.testing.assert_close(w[start:start + j].sum(), torch.tensor(1.0))
        torch.testing.assert_close(w[start:start + j], torch.softmax(beta[start:start + j], 0))
        start += j
    strat = PCDARTS(make_context())
    for kind, edges in strat.edge_weights().items():
        for j in range(2, 6):
            into = [e for e, (_, jj) in enumerate(cell_edges(4)) if jj == j]
            torch.testing.assert_close(edges[into].sum(), torch.tensor(1.0))
    with pytest.raises(ValueError, match="edges"):
        normalize_edges(torch.zeros(13))


# --- derivation -------------------------------------------------------------------------


def oracle_parse(op_w: torch.Tensor, edge_w: torch.Tensor) -> list[list]:
    """The official ``_parse``: W = softmax(α)·β̃; top-2 edges by max non-none W; best non-none op."""
    none = PRIMITIVES.index("none")
    gene, start = [], 0
    for j in range(2, 6):
        W = [[op_w[start + i][o] * edge_w[start + i] for o in range(len(PRIMITIVES))] for i in range(j)]
        strength = [max(W[i][o] for o in range(len(PRIMITIVES)) if o != none) for i in range(j)]
        for i in sorted(range(j), key=lambda i: -strength[i])[:2]:
            best = max((o for o in range(len(PRIMITIVES)) if o != none), key=lambda o: W[i][o])
            gene.append([PRIMITIVES[best], i, j])
        start += j
    return sorted(gene, key=lambda e: (e[2], e[1]))


@pytest.mark.parametrize("seed", range(5))
def test_derive_genotype_matches_official_parse(seed):
    g = torch.Generator().manual_seed(seed)
    op_w = {k: torch.softmax(torch.randn(14, 8, generator=g), -1) for k in CELL_KINDS}
    edge_w = {k: normalize_edges(torch.randn(14, generator=g)) for k in CELL_KINDS}
    geno = derive_genotype(op_w, edge_w)
    for kind in CELL_KINDS:
        edges = geno.cell(kind)[0]
        assert [list(e) for e in edges] == oracle_parse(op_w[kind].tolist(), edge_w[kind].tolist())
        for j in range(2, 6):
            assert sum(1 for _, _, jj in edges if jj == j) == 2
        assert all(op != "none" and 0 <= i < j for op, i, j in edges)


def test_derivation_ignores_none_and_uses_edge_weights():
    op_w = {k: torch.full((14, 8), 1 / 8) for k in CELL_KINDS}
    op_w["normal"][:, PRIMITIVES.index("none")] = 0.9  # none dominates: must never be picked
    op_w["normal"][:, PRIMITIVES.index("max_pool_3x3")] = 0.05
    beta = torch.zeros(14)
    beta[5] = 3.0  # node 4's edges are 5..8 (from nodes 0..3): edge 5 = (0, 4) gets the weight
    geno = derive_genotype(op_w, {k: normalize_edges(beta) for k in CELL_KINDS})
    normal = geno.cell("normal")[0]
    assert all(op != "none" for op, _, _ in normal)
    assert ("max_pool_3x3", 0, 4) not in normal  # 0.05 < the other ops' 1/8
    assert any(i == 0 and j == 4 for _, i, j in normal)


# --- the updates ------------------------------------------------------------------------


def test_alpha_frozen_during_warmup_and_weights_move():
    strat = PCDARTS(make_context({"search.pc_epochs": 2, "search.pc_warmup_epochs": 1}))
    alphas0, weights0 = arch_snapshot(strat), net_snapshot(strat)
    rec = strat.run_epoch(0)
    assert rec["arch_updates"] is False and rec["arch_steps"] == 0
    base = strat.pc.pc_lr if strat.s.optimizer == "sgd" else strat.s.lr  # PC-DARTS recipe, or the scale's
    assert rec["lr"] == pytest.approx(base)  # cosine, per epoch
    assert same(arch_snapshot(strat), alphas0)
    assert all(p.grad is None for p in strat.arch_parameters())
    assert not same(net_snapshot(strat), weights0)
    assert strat.ctx.arch_loader.epochs_seen == []  # warm-up draws no architecture batch

    weights1 = net_snapshot(strat)
    rec = strat.run_epoch(1)
    assert rec["arch_updates"] is True and rec["arch_steps"] == len(strat.ctx.train_loader)
    assert rec["lr"] == pytest.approx(base / 2)  # cos(π/2): halfway to 0
    assert strat.weight_opt.param_groups[0]["lr"] == pytest.approx(base / 2)
    for before, p in zip(alphas0, strat.arch_parameters()):
        assert p.grad is not None and not torch.equal(before, p.detach())
    assert not same(net_snapshot(strat), weights1)


def test_arch_step_moves_only_alpha_and_weight_step_only_weights():
    strat = PCDARTS(make_context())
    strat.net.train()
    alphas0, weights0 = arch_snapshot(strat), net_snapshot(strat)
    strat.arch_step()
    assert not any(torch.equal(a, p.detach()) for a, p in zip(alphas0, strat.arch_parameters()))
    assert same(net_snapshot(strat), weights0)
    assert all(p.grad is None for p in strat.net.parameters())

    # the weight step's forward sees detached softmax(α), β̃: no gradient reaches α, β
    for p in strat.arch_parameters():
        p.grad = None
    x, y = next(iter(strat.ctx.train_loader))
    loss = nn.functional.cross_entropy(strat.forward(x, strat.mixed_weights(detach=True)), y)
    loss.backward()
    assert all(p.grad is None for p in strat.arch_parameters())
    assert any(p.grad is not None for p in strat.net.parameters())


# --- records, artifacts, resume ---------------------------------------------------------


def _checkpoint(state: dict) -> dict:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


def test_resume_gives_the_uninterrupted_result():
    # warm-up 0 and an architecture split shorter than the train split: the arch
    # loader runs out inside each epoch, so its pass counter must be restored too.
    overrides = {"search.pc_epochs": 2, "search.pc_warmup_epochs": 0}
    full = PCDARTS(make_context(overrides))
    full.run_epoch(0)
    state = _checkpoint(full.state_dict())  # a serialized copy, as cpnas.search writes after each epoch
    rec_full = full.run_epoch(1)

    resumed = PCDARTS(make_context(overrides))  # a fresh process: new strategy, new loaders
    resumed.load_state_dict(state)
    rec = resumed.run_epoch(1)

    assert same(arch_snapshot(resumed), arch_snapshot(full))
    assert same(net_snapshot(resumed), net_snapshot(full))
    assert resumed.genotype() == full.genotype()
    assert resumed.ctx.arch_loader.epochs_seen == full.ctx.arch_loader.epochs_seen[2:] == [2, 3]
    timeless = lambda r: {k: v for k, v in r.items() if not k.endswith("seconds")}  # noqa: E731
    assert timeless(rec) == timeless(rec_full)
    assert resumed.artifacts() == full.artifacts()


def test_record_and_artifacts_are_json():
    strat = PCDARTS(make_context({"search.pc_epochs": 1, "search.pc_warmup_epochs": 0}))
    state = strat.state_dict()
    rec = strat.run_epoch(0)
    json.dumps(rec)
    for key in ("train_loss", "train_acc", "arch_acc", "genotype", "alphas", "edge_weights", "betas", "lr",
                "seconds"):
        assert key in rec
    assert len(rec["alphas"]["normal"]) == 14 and len(rec["alphas"]["normal"][0]) == len(PRIMITIVES)
    assert all(abs(sum(row) - 1) < 1e-5 for row in rec["alphas"]["reduce"])
    assert rec["genotype"] == strat.genotype().to_dict()
    art = strat.artifacts()["alphas.json"]
    json.dumps(art)
    assert art["genotypes"] == [{"epoch": 0, "genotype": rec["genotype"]}]
    assert art["alphas"] == rec["alphas"] and art["primitives"] == list(PRIMITIVES)
    assert art["alpha_max_shift"] == pytest.approx(alpha_movement(art["alphas"])["alpha_max_shift"])
    # α, β in the state are copies, not the live parameters
    assert not torch.equal(state["alphas"]["normal"], strat.alphas["normal"].detach())


def test_forward_mixed_with_partial_channels(seed):
    net = PartialChannelNetwork(C=8, num_classes=5, layers=3, reduction_layers=(1,), partial_k=4).train()
    alphas = {kind: torch.zeros(len(cell_edges(4)), len(PRIMITIVES), requires_grad=True) for kind in ("normal", "reduce")}
    betas = {kind: torch.zeros(len(cell_edges(4)), requires_grad=True) for kind in ("normal", "reduce")}
    weights = {}
    for kind in ("normal", "reduce"):
        # edge normalization: a softmax over the edges entering each node
        edge_w = torch.cat([torch.softmax(betas[kind][s:s + n], 0) for s, n in ((0, 2), (2, 3), (5, 4), (9, 5))])
        weights[kind] = (torch.softmax(alphas[kind], dim=-1), edge_w)
    y = net.forward_mixed(torch.randn(2, 3, 16, 16), weights)
    assert y.shape == (2, 5) and torch.isfinite(y).all()
    y.square().mean().backward()
    for kind in ("normal", "reduce"):
        assert alphas[kind].grad is not None and alphas[kind].grad.abs().sum() > 0
        assert betas[kind].grad is not None and betas[kind].grad.abs().sum() > 0
    # ops are built on C / k channels
    assert net.cells[0].edge_ops[0]["sep_conv_3x3"][0][0].in_channels == 8 // 4


def test_alpha_movement_sees_a_small_move_that_the_entropy_hides():
    k = len(PRIMITIVES)
    uniform = {kind: [[1 / k] * k for _ in range(14)] for kind in CELL_KINDS}
    still = alpha_movement(uniform)
    assert still["alpha_entropy_ratio"] == pytest.approx(1.0) and still["alpha_max_shift"] == pytest.approx(0.0)
    moved = {kind: [row[:] for row in rows] for kind, rows in uniform.items()}
    moved["reduce"][3][0] += 0.03
    moved["reduce"][3][1] -= 0.03
    out = alpha_movement(moved)
    assert out["alpha_max_shift"] == pytest.approx(0.03)
    assert out["alpha_entropy_ratio"] > 0.999  # the entropy barely registers the same move


def test_movement_table_reads_every_finished_pcdarts_search(tmp_path, monkeypatch):
    from cpnas.io import write_json
    from cpnas.alphas import movement_table

    monkeypatch.setenv("CPNAS_HOME", str(tmp_path))
    k = len(PRIMITIVES)
    uniform = {kind: [[1 / k] * k for _ in range(14)] for kind in CELL_KINDS}
    moved = {kind: [row[:] for row in rows] for kind, rows in uniform.items()}
    moved["normal"][0][2] += 0.05
    moved["normal"][0][3] -= 0.05
    root = tmp_path / "results" / "cpu"
    for folder, alphas in (("ablation/search/pcdarts/seed3", uniform), ("ranking/search/pcdarts-large/seed0", moved),
                           ("search/pcdarts/seed1", moved)):
        (root / folder).mkdir(parents=True)
        write_json(root / folder / "alphas.json", {"alphas": alphas})
    (root / "ranking/search/pcdarts-study/seed0").mkdir(parents=True)  # unfinished: no alphas.json
    df = movement_table("cpu")
    assert list(zip(df.study, df.search, df.seed)) == [("ablation", "pcdarts", 3), ("ranking", "pcdarts-large", 0),
                                                       ("-", "pcdarts", 1)]
    assert list(df.alpha_max_shift.round(6)) == [0.0, 0.05, 0.05]
