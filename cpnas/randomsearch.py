"""Random search with weight sharing (Li & Talwalkar, "Random Search and Reproducibility for NAS", UAI 2019).

The baseline a search strategy has to beat at equal compute: a 1-bit supernet (the
Child of CP-NAS, the same space and the same search recipe) is trained with a cell
drawn uniformly at every step (:func:`~cpnas.genotype.uniform_cell`: two inputs per
node, one of the seven non-``none`` ops on each), then candidate cells drawn from
the same distribution are scored one-shot, exactly as CP-NAS scores a draw (BN
re-estimated on the calibration batches, eval mode, the score split), and the best
is the result.

Equal search compute with CP-NAS: a CP-NAS search of L epochs trains two supernets
(Child and Parent) for L epochs each and scores 2L paths; random search trains its
one supernet for 2L epochs and scores 2L candidates. Its schedule is those 2L
training epochs, then L scoring epochs of two candidates each (so a killed search
resumes mid-way, as every search does).
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from cpnas import accel, distributed
from cpnas.binary import BINARY
from cpnas.config import Config
from cpnas.genotype import Genotype, uniform_cell
from cpnas.indicator import first_images, path_of, score_path
from cpnas.networks import SearchNetwork, loader_input_shape, memory_format_for
from cpnas.ops import PRIMITIVES
from cpnas.space import covering_path
from cpnas.strategies import cpnas_schedule
from cpnas.strategy_base import SearchContext, Strategy, register
from cpnas.train import cosine_lr, cross_entropy_loss, recipe_optimizer, set_lr, train_one_epoch

log = logging.getLogger(__name__)

CANDIDATES_PER_EPOCH = 2
"""Candidates scored per scoring epoch."""


@register
class RandomSearch(Strategy):
    """Random search with weight sharing at CP-NAS's search compute; see the module docstring."""

    name = "rs"
    label = "RS"
    method = "Random search (weight sharing)"
    artifact_files = ("candidates.json",)
    score_names = ("child",)

    @classmethod
    def plan(cls, cfg: Config) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        cpnas_epochs = len(cpnas_schedule(len(PRIMITIVES), cfg.search.T))
        train = [{"phase": "train", "epoch": e} for e in range(2 * cpnas_epochs)]
        score = [{"phase": "score", "epoch": 2 * cpnas_epochs + e, "candidates": CANDIDATES_PER_EPOCH}
                 for e in range(cpnas_epochs)]
        return train + score, [{"phase": "train the supernet, a uniform cell per step", "epochs": len(train)},
                               {"phase": f"score {CANDIDATES_PER_EPOCH} uniform candidates", "epochs": len(score)}]

    def __init__(self, ctx: SearchContext) -> None:
        super().__init__(ctx)
        s = ctx.cfg.search
        self.s = s
        self._schedule = type(self).plan(ctx.cfg)[0]
        self.train_epochs = sum(step["phase"] == "train" for step in self._schedule)
        torch.manual_seed(ctx.seed)
        self.net = SearchNetwork(precision=BINARY, C=s.init_channels, num_classes=ctx.num_classes, layers=s.layers,
                                 reduction_layers=s.reduction_layers, nodes=s.nodes)
        probe = covering_path(s.nodes)
        self.memory_format = memory_format_for(self.net, ctx.device, input_shape=loader_input_shape(ctx.train_loader),
                                               forward=lambda net, x: net(x, probe))
        self.net.to(ctx.device, memory_format=self.memory_format)
        self.opt = recipe_optimizer(self.net, s)
        accel.compile_ops(self.net, accel.example_input(loader_input_shape(ctx.train_loader), ctx.device,
                                                     self.memory_format))
        self.ddp = distributed.wrap(self.net, find_unused_parameters=True)
        self.loss_fn = cross_entropy_loss()
        self.generator = torch.Generator().manual_seed(ctx.seed)
        self.candidates: list[dict[str, Any]] = []  # {"genotype", "child"} of every scored candidate
        self._calibration: list | None = None

    def schedule(self) -> list[dict[str, Any]]:
        return self._schedule

    def _forward(self, x: torch.Tensor, cell: Genotype, module: Any = None) -> torch.Tensor:
        return (module or self.net)(x.contiguous(memory_format=self.memory_format), path_of(cell, self.s.nodes))

    def calibration_batches(self) -> list:
        if self._calibration is None:
            loader = self.ctx.calib_loader if self.ctx.calib_loader is not None else self.ctx.train_loader
            self._calibration = [b for _, b in zip(range(self.s.calibration_batches), loader)]
        return self._calibration

    def _score(self, cell: Genotype, loader: Any) -> float:
        forward = lambda x: self._forward(x, cell)  # noqa: E731
        return score_path(forward, self.net, loader, self.calibration_batches(), device=self.ctx.device,
                          desc="score rs")["acc"]

    def run_epoch(self, epoch: int) -> dict[str, Any]:
        step = self._schedule[epoch]
        ctx, s = self.ctx, self.s
        if step["phase"] == "train":
            lr = cosine_lr(s.lr, s.lr_min, epoch, self.train_epochs)
            set_lr(self.opt, lr)
            ctx.train_loader.set_epoch(epoch)
            forward = lambda x: self._forward(x, uniform_cell(self.generator, s.nodes), self.ddp)  # noqa: E731
            stats = train_one_epoch(forward, self.net.parameters(), ctx.train_loader, self.opt, self.loss_fn,
                                    device=ctx.device, grad_clip=s.grad_clip, modules=[self.net],
                                    desc=f"rs {epoch + 1}/{self.train_epochs}")
            log.info("epoch %d/%d (train)  loss=%.4f  acc=%.4f", epoch + 1, len(self._schedule), stats.loss, stats.acc)
            return {**step, "lr": lr, "train_loss": stats.loss, "train_acc": stats.acc, "seconds": stats.seconds}
        scored = []
        for _ in range(step["candidates"]):
            cell = uniform_cell(self.generator, s.nodes)
            acc = self._score(cell, ctx.score_loader)
            self.candidates.append({"genotype": cell.to_dict(), "child": acc})
            scored.append(acc)
        log.info("epoch %d/%d (score)  candidates %s", epoch + 1, len(self._schedule),
                 " ".join(f"{a:.4f}" for a in scored))
        return {**step, "child": scored}

    def genotype(self) -> Genotype:
        if not self.candidates:
            raise RuntimeError("random search has scored no candidate yet")
        best = max(self.candidates, key=lambda c: c["child"])  # the first drawn among equals
        return Genotype.from_dict(best["genotype"])

    def score_cells(self, cells: list[Genotype], *, max_images: int | None = None) -> list[dict[str, float]]:
        """``child``: the one-shot accuracy of each cell in the trained supernet, scored as the candidates were."""
        loader = first_images(self.ctx.score_loader, max_images)
        return [{"child": self._score(cell, loader)} for cell in cells]

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "opt": self.opt.state_dict(), "generator": self.generator.get_state(),
                "candidates": [dict(c) for c in self.candidates]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])
        self.generator.set_state(state["generator"])
        self.candidates = [dict(c) for c in state["candidates"]]

    def artifacts(self) -> dict[str, Any]:
        return {"candidates.json": {"candidates": self.candidates}}
