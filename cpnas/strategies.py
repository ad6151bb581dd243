"""Search strategies behind one small protocol (DESIGN §2; NASLib's optimizer/trainer split).

The loop in :mod:`cpnas.search` owns epochs, seeding, logging, checkpoints and the
history; a strategy owns its networks and decides what one epoch does:

* ``cpnas``   — Child-Parent search, Alg. 1 with the indicator of Eq. 1-2;
* ``bnas``    — the paper's BNAS†: ``cpnas`` with β_P = 0 (Table 1 footnote);
* ``random``  — the "Random selection" baseline of Fig. 6 (right);
* ``pcdarts`` — PC-DARTS (Xu et al., 2019) on the 1-bit supernet (:mod:`cpnas.pcdarts`).

The indicator's arithmetic (Eq. 1-2) and the scoring of a path are :mod:`cpnas.indicator`.
Protocol (:class:`~cpnas.strategy_base.Strategy`): ``schedule()`` lists the epochs up front (so
``--dry-run`` can print it), ``run_epoch(epoch)`` runs one and returns its history
record, ``state_dict()/load_state_dict()`` make it resumable, ``genotype()`` gives
the result, ``artifacts()`` extra JSON-able outputs.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from cpnas import accel, distributed
from cpnas.binary import BINARY, REAL, REAL_RELU
from cpnas.config import Config
from cpnas.data.splits import _mix_seed
from cpnas.genotype import Genotype, cell_edges, genotype_from_ops, top2_cell_info, top2_genotype
from cpnas.indicator import (edge_indicator, first_images, indicator_score, lifetime_zbar, path_of, round_noise,
                             score_path)
from cpnas.networks import SearchNetwork, loader_input_shape, memory_format_for
from cpnas.ops import PRIMITIVES
from cpnas.space import CELL_KINDS, OpPools, SampledPath, covering_path
from cpnas.strategy_base import SearchContext, Strategy, register
from cpnas.train import cosine_lr, cross_entropy_loss, recipe_optimizer, set_lr, train_one_epoch

log = logging.getLogger(__name__)


def cpnas_schedule(K: int, T: int) -> list[dict[str, int]]:
    """Alg. 1's epochs: while K > 1, T rounds of K draws, then K ← K − 1.

    ``len(cpnas_schedule(8, 3)) == (8+7+6+5+4+3+2)·3 == 105`` (§3.1).
    """
    out = []
    r = 0
    while K > 1:
        for t in range(T):
            for draw in range(K):
                out.append({"round": r, "K": K, "t": t, "draw": draw})
        K -= 1
        r += 1
    return out


@register
class CPNAS(Strategy):
    """Child-Parent search (§2.3, Alg. 1, Eq. 1-2).

    Two weight-sharing supernets of one architecture definition: the Child (1-bit,
    ``BINARY``) and the Parent (32-bit, ``REAL``, with DARTS' ReLU before each conv
    block unless ``search.parent_relu`` is false), each with its own weights and
    optimizer (the search recipe: SGD at ``paper``) kept across samples. Epoch
    (t, e) of a round trains the sampled
    Child path and the sampled Parent path for one epoch on the search-train split,
    measures their accuracies A_C, A_P on the search-score split, and gives every
    sampled op ``z = A_C + β_P (A_P − A_C)`` (Eq. 1 as printed; ``search.indicator
    = gap_penalty`` reads it as ``z = A_C − β_P (A_P − A_C)``). At the start of every t, each
    edge draws a random permutation of its remaining pool, and draw e takes its
    e-th element: in K draws every op of every edge is sampled exactly once
    (sampling without replacement, Alg. 1 line 4). After T passes the scores are
    averaged per op (z̄), turned into the indicator e(o) = softmax_edge(z̄)
    (Eq. 2), the op with the lowest e(o) leaves every edge, and K ← K − 1 (lines
    8-10). The search ends when one op is left on each edge.

    Accuracies are measured in eval mode after the sampled path's BN statistics
    are re-estimated on ``search.calibration_batches`` fixed search-train batches
    (:func:`~cpnas.train.recalibrate_bn`, as SPOS): the running averages of a
    weight-sharing supernet mix every path sampled so far, and batch statistics
    would make a score depend on how the score split is batched (with a
    class-sorted split, on 3-4 classes per batch). After every round
    ``snr`` compares the spread of z over the round's draws with the standard
    error the score split's size alone implies (:func:`~cpnas.indicator.indicator_noise`). When β_P = 0 the
    Parent's accuracy has no weight in Eq. 1, so it is neither trained nor measured
    (BNAS†): the Child, the sampling and the scores are exactly those of a run that
    trained it.
    """

    name = "cpnas"
    label = "CP-NAS"
    method = "Child-Parent model"
    uses_beta_p = True
    artifact_files = ("indicator.json",)

    @classmethod
    def search_summary(cls, out: Any) -> dict[str, Any]:
        """The mean z̄ of the ops kept after the last round, the Child's last A_C and the median snr."""
        import pathlib
        import statistics

        from cpnas.io import read_json

        out = pathlib.Path(out)
        if not (out / "indicator.json").exists():
            return {}
        ind = read_json(out / "indicator.json")
        last = ind["rounds"][-1]
        kept = [z for kind in CELL_KINDS for e, zbar in enumerate(last["mean_z"][kind])
                for op, z in zbar.items() if op != last["removed"][kind][e]]
        history = read_json(out / "history.json")
        return {"own_search_indicator": statistics.fmean(kept), "search_child_acc": history[-1]["A_C"],
                "median_snr": ind.get("median_snr")}

    @classmethod
    def supernets(cls, cfg: Config, num_classes: int) -> list[torch.nn.Module]:
        """The 1-bit Child and the 32-bit Parent."""
        s = cfg.search
        return [SearchNetwork(s.init_channels, num_classes, s.layers, s.reduction_layers, precision, nodes=s.nodes)
                for precision in (BINARY, REAL_RELU if s.parent_relu else REAL)]

    @classmethod
    def plan(cls, cfg: Config) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        schedule = cpnas_schedule(len(PRIMITIVES), cfg.search.T)
        rounds: dict[int, dict[str, int]] = {}
        for step in schedule:
            rounds.setdefault(step["round"], {"round": step["round"], "K": step["K"], "epochs": 0})
            rounds[step["round"]]["epochs"] += 1
        return schedule, list(rounds.values())

    def __init__(self, ctx: SearchContext) -> None:
        super().__init__(ctx)
        s = ctx.cfg.search
        self.s = s
        self.beta_p = float(ctx.beta_p)
        self.pools = OpPools(s.nodes)
        self.edges = cell_edges(s.nodes)
        self._schedule = cpnas_schedule(len(PRIMITIVES), s.T)
        net_args = dict(C=s.init_channels, num_classes=ctx.num_classes, layers=s.layers,
                        reduction_layers=s.reduction_layers, nodes=s.nodes)
        torch.manual_seed(ctx.seed)
        self.child = SearchNetwork(precision=BINARY, **net_args)
        self.parent = SearchNetwork(precision=REAL_RELU if s.parent_relu else REAL, **net_args)
        probe_path = covering_path(s.nodes)
        self.memory_format = memory_format_for(  # the Parent has the same layers
            self.child, ctx.device, input_shape=loader_input_shape(ctx.train_loader),
            forward=lambda net, x: net(x, probe_path))
        self.child.to(ctx.device, memory_format=self.memory_format)
        self.parent.to(ctx.device, memory_format=self.memory_format)
        self.child_opt = recipe_optimizer(self.child, s)
        self.parent_opt = recipe_optimizer(self.parent, s)
        example = accel.example_input(loader_input_shape(ctx.train_loader), ctx.device, self.memory_format)
        accel.compile_ops(self.child, example)  # --compile: stem, preprocessing, each candidate op (cpnas.accel)
        accel.compile_ops(self.parent, example)
        # Data-parallel (cpnas.distributed): the weight steps run through DDP; every draw trains
        # another sub-path, hence find_unused_parameters (every rank draws the same path).
        self.child_ddp = distributed.wrap(self.child, find_unused_parameters=True)
        self.parent_ddp = distributed.wrap(self.parent, find_unused_parameters=True)
        self._calibration: list | None = None
        self.loss_fn = cross_entropy_loss()
        self.generator = torch.Generator().manual_seed(ctx.seed)
        self.permutations: dict[str, list[list[str]]] | None = None
        # scores[kind][edge][op] = the T values z_{k,t}^{(i,j)} of the current round
        self.scores: dict[str, list[dict[str, list[float]]]] = self._empty_scores()
        self.rounds: list[dict[str, Any]] = []  # indicator and removed op of every finished round
        self.round_draws: list[dict[str, Any]] = []  # A_C, A_P, z of the current round's draws

    @property
    def trains_parent(self) -> bool:
        return self.beta_p != 0.0

    def _empty_scores(self) -> dict[str, list[dict[str, list[float]]]]:
        return {kind: [{op: [] for op in self.pools.pool(kind, e)} for e in range(len(self.edges))]
                for kind in CELL_KINDS}

    def schedule(self) -> list[dict[str, Any]]:
        return self._schedule

    def _draw_permutations(self) -> dict[str, list[list[str]]]:
        """A random order of every edge's pool: draw e of this pass takes element e (no replacement)."""
        perms = {}
        for kind in CELL_KINDS:
            perms[kind] = []
            for e in range(len(self.edges)):
                pool = self.pools.pool(kind, e)
                order = torch.randperm(len(pool), generator=self.generator).tolist()
                perms[kind].append([pool[k] for k in order])
        return perms

    def sample_path(self, draw: int) -> SampledPath:
        """Alg. 1 line 4: the path of draw ``draw`` of the current pass."""
        if draw == 0 or self.permutations is None:
            self.permutations = self._draw_permutations()
        return SampledPath(*(tuple(self.permutations[kind][e][draw] for e in range(len(self.edges)))
                      for kind in CELL_KINDS))

    def run_epoch(self, epoch: int) -> dict[str, Any]:
        step = self._schedule[epoch]
        ctx, s = self.ctx, self.s
        path = self.sample_path(step["draw"])
        lr = cosine_lr(s.lr, s.lr_min, epoch, len(self._schedule))
        ctx.train_loader.set_epoch(epoch)
        record: dict[str, Any] = {**step, "epoch": epoch, "lr": lr, "path": path.to_dict()}
        nets = [("child", self.child, self.child_ddp, self.child_opt)]
        if self.trains_parent:
            nets.append(("parent", self.parent, self.parent_ddp, self.parent_opt))
        acc = {}
        fmt = self.memory_format
        for who, net, ddp, opt in nets:
            set_lr(opt, lr)
            train_forward = lambda x, ddp=ddp: ddp(x.contiguous(memory_format=fmt), path)  # noqa: E731
            forward = lambda x, net=net: net(x.contiguous(memory_format=fmt), path)  # noqa: E731
            stats = train_one_epoch(train_forward, net.parameters(), ctx.train_loader, opt,
                                    self.loss_fn, device=ctx.device, grad_clip=s.grad_clip, modules=[net],
                                    desc=f"{who} {epoch + 1}/{len(self._schedule)}")
            score = score_path(forward, net, ctx.score_loader, self.calibration_batches(), device=ctx.device,
                               desc=f"score {who}")
            acc[who] = score["acc"]
            record.update({f"{who}_train_loss": stats.loss, f"{who}_train_acc": stats.acc,
                           f"{who}_seconds": stats.seconds + score["seconds"]})
        a_c = acc["child"]
        a_p = acc.get("parent")
        z = indicator_score(a_c, a_p if a_p is not None else a_c, self.beta_p, s.indicator)  # Eq. 1
        record.update({"A_C": a_c, "A_P": a_p, "z": z, "score_images": score["n"]})
        for kind in CELL_KINDS:
            for e, op in enumerate(path.cell(kind)):
                self.scores[kind][e][op].append(z)
        self.round_draws.append({"A_C": a_c, "A_P": a_p, "z": z, "n": score["n"]})
        if step["t"] == s.T - 1 and step["draw"] == step["K"] - 1:
            record["removed"] = self._end_round(step["round"], epoch)
        log.info("epoch %d/%d K=%d t=%d draw=%d  A_C=%.4f  A_P=%s  z=%.4f", epoch + 1, len(self._schedule),
                 step["K"], step["t"], step["draw"], a_c, "-" if a_p is None else f"{a_p:.4f}", z)
        return record

    def _end_round(self, round_index: int, epoch: int) -> dict[str, list[str]]:
        """Alg. 1 lines 8-10: average the T scores, Eq. 2 per edge, drop the worst op, K ← K − 1."""
        indicator: dict[str, list[dict[str, float]]] = {}
        removed: dict[str, list[str]] = {}
        mean_scores: dict[str, list[dict[str, float]]] = {}
        for kind in CELL_KINDS:
            indicator[kind], removed[kind], mean_scores[kind] = [], [], []
            for e in range(len(self.edges)):
                zbar = {op: sum(v) / len(v) for op, v in self.scores[kind][e].items()}
                ind = edge_indicator(zbar)
                # Ties (equal accuracies are common on small score sets) break towards the op
                # drawn from the RNG: deterministic for a seed, unbiased across ops.
                order = torch.randperm(len(ind), generator=self.generator).tolist()
                ops = list(ind)
                worst = min((ops[k] for k in order), key=lambda op: ind[op])
                self.pools.remove(kind, e, worst)
                indicator[kind].append(ind)
                removed[kind].append(worst)
                mean_scores[kind].append(zbar)
        noise = round_noise(self.round_draws, self.beta_p, self.s.indicator)
        self.rounds.append({"round": round_index, "epoch": epoch, "indicator": indicator,
                            "mean_z": mean_scores, "removed": removed, **noise})
        shown = {k: "n/a" if noise[k] is None else f"{noise[k]:.{d}f}" for k, d in (("z_std", 4), ("z_se", 4),
                                                                                     ("snr", 2))}
        log.info("round %d: z spread %s over %d draws, score-split noise %s, snr %s", round_index,
                 shown["z_std"], noise["draws"], shown["z_se"], shown["snr"])
        self.round_draws = []
        self.scores = self._empty_scores()
        self.permutations = None
        return removed

    def genotype(self) -> Genotype:
        return self.final_cell()[0]

    def final_cell(self) -> tuple[Genotype, dict[str, Any]]:
        """The genotype of Alg. 1's final path under ``search.final_cell``, and how its edges were ranked.

        ``top2`` ranks each node's incoming edges by the *lifetime* z̄ of the op left on
        them (:func:`lifetime_zbar`: its mean z over every draw that contained it, in
        every round). The last round alone cannot rank edges: with T = 1 all of its
        survivors come from the one better draw and share one z̄. Equal scores are
        ordered by a generator seeded from the search seed, never by edge index; an
        edge left with ``none`` can fill a node's place with its best other op
        (:func:`~cpnas.genotype.top2_cell_info`).
        """
        path = self.pools.final_path()
        if self.s.final_cell == "keep_all":
            return genotype_from_ops(path.normal, path.reduce, self.s.nodes), {"final_cell": "keep_all"}
        if self.s.final_cell != "top2":
            raise ValueError(f"search.final_cell must be 'keep_all' or 'top2', got {self.s.final_cell!r}")
        life = {kind: lifetime_zbar(self.rounds, kind) for kind in CELL_KINDS}
        scores = {kind: [life[kind][e][op] for e, op in enumerate(path.cell(kind))] for kind in CELL_KINDS}
        fallback = {kind: [_best_non_none(life[kind][e]) if op == "none" else None
                           for e, op in enumerate(path.cell(kind))] for kind in CELL_KINDS}
        gen = torch.Generator().manual_seed(_mix_seed(self.ctx.seed, FINAL_CELL_STREAM))
        genotype, info = top2_cell_info(path.normal, path.reduce, scores["normal"], scores["reduce"], self.s.nodes,
                                        generator=gen, fallback=fallback)
        return genotype, {"final_cell": "top2", "edge_score": "lifetime mean z", "scores": scores, **info}

    def state_dict(self) -> dict[str, Any]:
        return {"child": self.child.state_dict(), "parent": self.parent.state_dict(),
                "child_opt": self.child_opt.state_dict(), "parent_opt": self.parent_opt.state_dict(),
                "generator": self.generator.get_state(), "pools": self.pools.state_dict(),
                "permutations": self.permutations, "scores": self.scores, "rounds": self.rounds,
                "round_draws": self.round_draws}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.child.load_state_dict(state["child"])
        self.parent.load_state_dict(state["parent"])
        self.child_opt.load_state_dict(state["child_opt"])
        self.parent_opt.load_state_dict(state["parent_opt"])
        self.generator.set_state(state["generator"])
        self.pools.load_state_dict(state["pools"])
        self.permutations = state["permutations"]
        self.scores = state["scores"]
        self.rounds = state["rounds"]
        self.round_draws = list(state.get("round_draws", []))

    def artifacts(self) -> dict[str, Any]:
        snr = [r["snr"] for r in self.rounds if r.get("snr") is not None]
        return {"indicator.json": {"edges": [list(e) for e in self.edges], "beta_p": self.beta_p,
                                   "indicator": self.s.indicator, "parent_relu": self.s.parent_relu,
                                   "median_snr": _median(snr), "rounds": self.rounds,
                                   "final_cell": self.final_cell()[1]}}

    score_names = ("child", "parent", "z_beta2", "z_beta0", "lifetime_zbar")

    def score_cells(self, cells: list[Genotype], *, max_images: int | None = None) -> list[dict[str, float]]:
        """One-shot scores of finished-search cells in the trained supernets, and the search's own reading.

        Each cell runs as a path of the supernet (its op on each kept edge, ``none`` on the
        others), scored as the search scores a draw (:func:`score_path`: BN re-estimated on
        the calibration batches, then eval mode) on the first ``max_images`` of the score
        split: ``child`` = A_C, ``parent`` = A_P, ``z_beta2``/``z_beta0`` = Eq. 1 at β_P = 2
        and 0 (under ``search.indicator``; BNAS† trains no Parent: ``parent`` and ``z_beta2`` are NaN);
        ``lifetime_zbar`` = the mean over the cell's edges of the lifetime z̄ of its op on
        that edge (:func:`lifetime_zbar`), which needs no forward pass.
        """
        ctx = self.ctx
        life = {kind: lifetime_zbar(self.rounds, kind) for kind in CELL_KINDS}
        loader = first_images(ctx.score_loader, max_images)
        fmt = self.memory_format
        out = []
        for cell in cells:
            path = path_of(cell, self.s.nodes)
            acc = {}
            for who, net in (("child", self.child), ("parent", self.parent)):
                if who == "parent" and not self.trains_parent:
                    acc[who] = float("nan")
                    continue
                forward = lambda x, net=net: net(x.contiguous(memory_format=fmt), path)  # noqa: E731
                acc[who] = score_path(forward, net, loader, self.calibration_batches(), device=ctx.device,
                                      desc=f"rank {who}")["acc"]
            zs = [life[kind][e].get(op, float("nan")) for kind in CELL_KINDS
                  for e, op in enumerate(path.cell(kind)) if op != "none"]
            out.append({"child": acc["child"], "parent": acc["parent"],
                        "z_beta2": indicator_score(acc["child"], acc["parent"], 2.0, self.s.indicator),
                        "z_beta0": indicator_score(acc["child"], acc["child"], 0.0, self.s.indicator),
                        "lifetime_zbar": sum(zs) / len(zs)})
        return out

    def calibration_batches(self) -> list:
        """The fixed batches that re-estimate BN statistics before every score (read once, then kept)."""
        if self._calibration is None:
            loader = self.ctx.calib_loader if self.ctx.calib_loader is not None else self.ctx.train_loader
            n = self.s.calibration_batches
            self._calibration = [batch for _, batch in zip(range(n), loader)]
        return self._calibration


@register
class BNAS(CPNAS):
    """BNAS† of Table 1: CP-NAS with β_P = 0 ("we only use the performance measure")."""

    name = "bnas"
    label = "BNAS†"
    method = "Performance-based"
    fixed_beta_p = 0.0

    def __init__(self, ctx: SearchContext) -> None:
        ctx.beta_p = self.fixed_beta_p
        super().__init__(ctx)


@register
class RandomSelection(Strategy):
    """"Random selection" of Fig. 6 (right): a uniformly random architecture of the same space.

    Every one of the 28 decisions (14 edges × normal/reduction cell) draws one of the
    K = 8 ops uniformly and independently, ``none`` included — the distribution of
    the final path of CP-NAS under a uniformly random indicator. A cell whose 14
    draws are all ``none`` (probability 8⁻¹⁴) is redrawn. No training: cost 0 epochs.
    The same ``final_cell`` reading as CP-NAS turns the path into a genotype.
    """

    name = "random"
    label = "Random"
    method = "Random selection"

    @classmethod
    def plan(cls, cfg: Config) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return [], [{"phase": "uniform draw, no training", "epochs": 0}]

    @classmethod
    def supernets(cls, cfg: Config, num_classes: int) -> list[torch.nn.Module]:
        return []

    def __init__(self, ctx: SearchContext) -> None:
        super().__init__(ctx)
        gen = torch.Generator().manual_seed(ctx.seed)
        n = len(cell_edges(ctx.cfg.search.nodes))
        cells = []
        for _ in CELL_KINDS:
            while True:
                ops = [PRIMITIVES[k] for k in torch.randint(len(PRIMITIVES), (n,), generator=gen).tolist()]
                if any(op != "none" for op in ops):
                    break
            cells.append(tuple(ops))
        self.path = SampledPath(*cells)

    def run_epoch(self, epoch: int) -> dict[str, Any]:
        raise RuntimeError("random selection trains nothing")

    def genotype(self) -> Genotype:
        if self.ctx.cfg.search.final_cell == "top2":
            gen = torch.Generator().manual_seed(self.ctx.seed + 1)
            n = len(self.path.normal)
            return top2_genotype(self.path.normal, self.path.reduce, torch.rand(n, generator=gen).tolist(),
                                 torch.rand(n, generator=gen).tolist(), self.ctx.cfg.search.nodes)
        return genotype_from_ops(self.path.normal, self.path.reduce, self.ctx.cfg.search.nodes)


FINAL_CELL_STREAM = 0x70F2
"""Mixed with the search seed to seed the final cell's tie-breaks (a stream of its own, so reading the
genotype twice, or after a resume, gives the same cell)."""


def _best_non_none(zbar: dict[str, float]) -> tuple[str, float] | None:
    """The op other than ``none`` with the highest lifetime z̄ on an edge (first in PRIMITIVES on a tie)."""
    ops = [op for op in PRIMITIVES if op != "none" and op in zbar]
    if not ops:
        return None
    best = max(ops, key=lambda op: zbar[op])
    return best, zbar[best]


def _median(values: list[float]) -> float | None:
    import statistics

    return statistics.median(values) if values else None


