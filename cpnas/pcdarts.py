"""PC-DARTS on the 1-bit supernet: the gradient-based baseline of Fig. 6 and §3.2's speed claim.

PC-DARTS (Xu et al., "PC-DARTS: Partial Channel Connections for Memory-Efficient
Architecture Search", ICLR 2020; official code ``yuhuixu1993/PC-DARTS``) relaxes
the choice of op on every edge (i, j) of the cell into a softmax-weighted mixture
(DARTS, their §3.1)::

    f_{i,j}(x_i) = Σ_o softmax(α_{i,j})_o · o(x_i),

with two changes, both run by :meth:`~cpnas.partialchannel.PartialChannelCell.forward_mixed`
(:mod:`cpnas.partialchannel` extends the shared supernet, :class:`cpnas.space.SearchCell`, with them):

* **Partial channel connections** (their §3.2, Eq. 2): only 1/K of the channels
  (K = ``search.pc_partial_k`` = 4) of x_i go through the mixture, the other
  (K−1)/K bypass it (max-pooled 2×2 on the stride-2 edges of a reduction cell),
  and the two parts are concatenated and channel-shuffled (ShuffleNet)::

      f^PC_{i,j}(x_i) = shuffle([Σ_o softmax(α_{i,j})_o · o(S_{i,j} ∗ x_i), (1 − S_{i,j}) ∗ x_i]);

* **Edge normalization** (their §3.3, Eq. 3): one more parameter β_{i,j} per edge,
  normalized over the incoming edges of each node, weighs the edges::

      x_j = Σ_{i<j} softmax_{i'<j}(β_{·,j})_i · f^PC_{i,j}(x_i).

Search (their §4.2 and ``train_search.py``), first-order, alternating: for every
batch of the search-train split, once the warm-up epochs (``pc_warmup_epochs``)
are over, one Adam step on (α, β) with a batch of the disjoint architecture split
(lr ``pc_arch_lr``, betas (0.5, 0.999), weight decay ``pc_arch_weight_decay``),
then one SGD step on the network weights (lr ``pc_lr`` cosine-annealed per epoch,
momentum, weight decay ``pc_weight_decay``, gradient clipping). α and β start at
1e-3·N(0, 1) as in DARTS. The weight steps go through the one training loop,
:func:`cpnas.train.train_one_epoch`, with the architecture step as its
``before_step`` hook.

Derivation (their §3.3 "the connectivity of edge (i, j) is determined by both α
and β", DARTS §2.4): the op weights of edge (i, j) are
``softmax(α_{i,j}) × softmax_{i'<j}(β)_i``; each intermediate node keeps the two
incoming edges whose best non-``none`` weight is largest, each with that best op
(:func:`~cpnas.partialchannel.derive_genotype`).

Deviations from PC-DARTS, each deliberate (the comparison of the paper is on the
same space and the same supernet as CP-NAS):

* the supernet is the CP-NAS search net (§3.1: 6 cells, C = 16, reductions at
  cells 1 and 3), not PC-DARTS' 8 cells (reductions at 1/3 and 2/3);
* the ops are CP-NAS's (§2.2): every convolution inside the cells is 1-bit
  (weights and activations, :class:`~cpnas.binary.BinaryConv2d`) and the ReLUs
  of the DARTS ops and of the input-node preprocessing are removed;
* the weight step's forward uses detached softmax(α), softmax(β), and the
  architecture step computes only the gradients of (α, β)
  (``torch.autograd.grad``): the official code also back-propagates into (and
  then discards) the weight gradients in the architecture step, and into α in
  the weight step. The updates are identical; ours skip work that is thrown away;
* the learning-rate floor is ``search.lr_min`` (0: "annealed down to zero", as
  DARTS and PC-DARTS describe their schedules; both official scripts pass
  ``learning_rate_min=0.001``);
* the architecture split is iterated in passes (a new pass, i.e. a new shuffle,
  at every epoch and whenever it runs out), as the official ``V100_python1.0``
  script does; the original script drew ``next(iter(valid_queue))``, a fresh
  random batch every step. Pass p is ``arch_loader.set_epoch(p)``, so a resumed
  run sees the same batches;
* the accuracy on the architecture split, recorded every epoch (the official
  script only measures it after the last), is measured with batch statistics
  (BN in train mode): it is the function whose loss the architecture step
  descends (the architecture step runs in train mode, as in PC-DARTS), it is the
  protocol of the CP-NAS scores it is compared with in Fig. 6, and the supernet's
  affine-free BN running averages lag far behind on the short ``smoke``/``cpu``
  runs. Its time is recorded apart (``eval_seconds``) because PC-DARTS itself
  does not spend it.

Data-parallel (:mod:`cpnas.distributed`, under torchrun): the weight steps run the
mixed supernet inside DistributedDataParallel, each rank on its shard of every
batch; the architecture step computes (α, β)'s gradient on this rank's shard of the
architecture batch and averages it over ranks before the Adam step, so α and β stay
identical on every rank and every rank derives the same genotype (the known failure
of naive DDP DARTS, where each rank updates α from its own shard: nni#5013).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import nn

from cpnas import accel, distributed
from cpnas.binary import BINARY
from cpnas.config import Config, _f, register_section
from cpnas.errors import CpnasError
from cpnas.genotype import Genotype, cell_edges
from cpnas.networks import loader_input_shape, memory_format_for
from cpnas.ops import PRIMITIVES
from cpnas.alphas import alpha_movement
from cpnas.partialchannel import MixedForward, PartialChannelNetwork, derive_genotype, normalize_edges
from cpnas.space import CELL_KINDS
from cpnas.strategy_base import SearchContext, Strategy, register
from cpnas.train import (NonFiniteLossError, cosine_lr, cross_entropy_loss, evaluate, recalibrate_bn,
                         recipe_optimizer, set_lr, sgd, train_one_epoch)

log = logging.getLogger(__name__)

ARCH_INIT_SCALE = 1e-3
"""DARTS / PC-DARTS ``_initialize_alphas``: α, β ~ 1e-3·N(0, 1)."""

ARCH_ADAM_BETAS = (0.5, 0.999)
"""DARTS / PC-DARTS ``Architect``: Adam with betas (0.5, 0.999)."""


@dataclass(frozen=True)
class PCDartsSettings:
    """PC-DARTS's own configuration section (Xu et al., 2020, §4.2 CIFAR-10 search settings).

    Its keys are ``search.pc_*`` (:func:`cpnas.config.register_section`); the search fields it
    shares with the other strategies (cells, channels, splits, ``lr_min``, ``grad_clip``…) are
    ``search``'s own.
    """

    pc_epochs: int = _f(50, "PC-DARTS §4.2: 50 epochs", size=True, ge=1)
    pc_warmup_epochs: int = _f(15, "PC-DARTS §4.2: architecture updates start after 15 epochs", size=True, ge=0)
    pc_batch_size: int = _f(256, "PC-DARTS §4.2: batch size 256", size=True, ge=1)
    pc_lr: float = _f(0.1, "PC-DARTS §4.2: initial weight learning rate 0.1, cosine", gt=0)
    pc_weight_decay: float = _f(3e-4, "PC-DARTS §4.2 / DARTS: weight decay 3×10⁻⁴", ge=0)
    pc_arch_lr: float = _f(6e-4, "PC-DARTS §4.2: Adam, learning rate 6×10⁻⁴", gt=0)
    pc_arch_weight_decay: float = _f(1e-3, "PC-DARTS §4.2: Adam weight decay 10⁻³", ge=0)
    pc_partial_k: int = _f(4, "PC-DARTS §4.2: K = 4 (1/4 of the channels go through the ops)", ge=1)

    def check(self) -> None:
        if self.pc_warmup_epochs > self.pc_epochs:
            raise CpnasError(f"search.pc_warmup_epochs ({self.pc_warmup_epochs}) exceeds "
                             f"search.pc_epochs ({self.pc_epochs})")


register_section(PCDartsSettings, strategy="pcdarts", presets={
    "smoke": {"pc_epochs": 3, "pc_warmup_epochs": 1, "pc_batch_size": 32},
    "cpu": {"pc_epochs": 10, "pc_warmup_epochs": 3, "pc_batch_size": 64},
})


def unused_settings(cfg: Config) -> dict[str, str]:
    """Keys of this section that ``cfg``'s other settings leave unread, each with what is read instead."""
    if cfg.search.optimizer == "sgd":
        return {}
    why = f"not used: search.optimizer = {cfg.search.optimizer}, PC-DARTS then uses search.%s"
    return {"search.pc_lr": why % "lr", "search.pc_weight_decay": why % "weight_decay"}


@register
class PCDARTS(Strategy):
    """PC-DARTS (Xu et al., 2020) on the 1-bit CP-NAS supernet; see the module docstring.

    Epoch e trains the weights for one pass over the search-train split; from
    epoch ``pc_warmup_epochs`` on, every weight step is preceded by one step on
    (α, β) with a batch of ``ctx.arch_loader``. The genotype is derived after
    every epoch; :meth:`genotype` is the last one.
    """

    name = "pcdarts"
    label = "PC"
    title = "PC-DARTS"
    method = "Gradient-based"
    needs_arch_split = True
    settings = PCDartsSettings
    artifact_files = ("alphas.json",)

    @classmethod
    def search_batch_size(cls, cfg: Config) -> int:
        return cfg.section(PCDartsSettings).pc_batch_size

    @classmethod
    def unused_settings(cls, cfg: Config) -> dict[str, str]:
        return unused_settings(cfg)

    @classmethod
    def search_summary(cls, out: Any) -> dict[str, Any]:
        """The accuracy of the last mixed supernet on the architecture split (its own score and its Child's)."""
        from pathlib import Path

        from cpnas.io import read_json

        if not (Path(out) / "history.json").exists():
            return {}
        last = read_json(Path(out) / "history.json")[-1]
        return {"own_search_indicator": last["arch_acc"], "search_child_acc": last["arch_acc"]}

    @classmethod
    def supernets(cls, cfg: Config, num_classes: int) -> list[nn.Module]:
        s = cfg.search
        return [PartialChannelNetwork(s.init_channels, num_classes, s.layers, s.reduction_layers, BINARY,
                                      nodes=s.nodes, partial_k=cfg.section(PCDartsSettings).pc_partial_k)]

    @classmethod
    def plan(cls, cfg: Config) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        pc = cfg.section(PCDartsSettings)
        schedule = [{"epoch": e, "arch_updates": e >= pc.pc_warmup_epochs} for e in range(pc.pc_epochs)]
        return schedule, [{"phase": "warm-up (weights only)", "epochs": min(pc.pc_warmup_epochs, pc.pc_epochs)},
                          {"phase": "weights + α", "epochs": max(pc.pc_epochs - pc.pc_warmup_epochs, 0)}]

    @classmethod
    def epoch_kind(cls, step: dict[str, Any]) -> str:
        """``warmup`` for the weights-only epochs, ``""`` for those with architecture steps."""
        return "" if step["arch_updates"] else "warmup"

    @classmethod
    def epoch_seconds(cls, record: dict[str, Any]) -> float | None:
        """The weight and architecture steps: PC-DARTS' own code evaluates only at the end of its search."""
        return record["train_seconds"]

    def __init__(self, ctx: SearchContext) -> None:
        super().__init__(ctx)
        s = ctx.cfg.search
        self.s = s
        pc = self.pc = ctx.cfg.section(PCDartsSettings)
        if ctx.arch_loader is None:
            raise CpnasError("the pcdarts strategy needs ctx.arch_loader, a split disjoint from the "
                             "search-train split for the architecture steps (cpnas.search builds it)")
        if pc.pc_partial_k < 1 or s.init_channels % pc.pc_partial_k:
            raise CpnasError(f"PC-DARTS sends 1/search.pc_partial_k of every cell's channels through the "
                             f"ops: search.init_channels={s.init_channels} must be a multiple of "
                             f"search.pc_partial_k={pc.pc_partial_k}")
        batch = getattr(ctx.train_loader, "global_batch_size", getattr(ctx.train_loader, "batch_size", None))
        if batch is not None and batch != pc.pc_batch_size:
            log.warning("PC-DARTS weight steps use the search-train loader's batch size %d, not "
                        "search.pc_batch_size=%d", batch, pc.pc_batch_size)
        self.edges = cell_edges(s.nodes)
        torch.manual_seed(ctx.seed)
        self.net = PartialChannelNetwork(C=s.init_channels, num_classes=ctx.num_classes, layers=s.layers,
                                         reduction_layers=s.reduction_layers, precision=BINARY, nodes=s.nodes,
                                         partial_k=pc.pc_partial_k)
        uniform = {kind: (torch.full((len(cell_edges(s.nodes)), len(PRIMITIVES)), 1 / len(PRIMITIVES)),
                          normalize_edges(torch.zeros(len(cell_edges(s.nodes))), s.nodes)) for kind in CELL_KINDS}
        self.memory_format = memory_format_for(self.net, ctx.device, input_shape=loader_input_shape(ctx.train_loader),
                                               forward=lambda net, x: net.forward_mixed(x, uniform))
        self.net.to(ctx.device, memory_format=self.memory_format)
        example = accel.example_input(loader_input_shape(ctx.train_loader), ctx.device, self.memory_format)
        accel.compile_ops(self.net, example, forward=lambda net, x: net.forward_mixed(x, uniform))  # --compile
        self.weight_step_net = distributed.wrap(MixedForward(self.net), find_unused_parameters=True)
        gen = torch.Generator().manual_seed(ctx.seed)
        n_edges, n_ops = len(self.edges), len(PRIMITIVES)
        self.alphas = {kind: nn.Parameter((ARCH_INIT_SCALE * torch.randn(n_edges, n_ops, generator=gen))
                                          .to(ctx.device)) for kind in CELL_KINDS}
        self.betas = {kind: nn.Parameter((ARCH_INIT_SCALE * torch.randn(n_edges, generator=gen)).to(ctx.device))
                      for kind in CELL_KINDS}
        if s.optimizer == "sgd":  # PC-DARTS' own recipe (their §4.2)
            self.weight_opt = sgd(self.net.parameters(), pc.pc_lr, s.momentum, pc.pc_weight_decay)
        else:  # the search recipe of the scale (cpu: Adam, as CP-NAS's Child), for a like-for-like comparison
            self.weight_opt = recipe_optimizer(self.net, s)
        self._pc_lr = pc.pc_lr if s.optimizer == "sgd" else s.lr
        self.arch_opt = torch.optim.Adam(self.arch_parameters(), lr=pc.pc_arch_lr, betas=ARCH_ADAM_BETAS,
                                         weight_decay=pc.pc_arch_weight_decay)
        self.loss_fn = cross_entropy_loss()
        self._schedule = [{"epoch": e, "arch_updates": e >= pc.pc_warmup_epochs} for e in range(pc.pc_epochs)]
        self.arch_passes = 0  # passes started over ctx.arch_loader; pass p uses set_epoch(p)
        self._arch_iter: Iterator | None = None
        self.genotypes: list[dict[str, Any]] = []  # {"epoch", "genotype"} after every epoch

    # --- architecture parameters -------------------------------------------------

    def arch_parameters(self) -> list[nn.Parameter]:
        """α (normal, reduce) then β (normal, reduce): what the Adam architecture step updates."""
        return [self.alphas[k] for k in CELL_KINDS] + [self.betas[k] for k in CELL_KINDS]

    def op_weights(self) -> dict[str, torch.Tensor]:
        """softmax(α) over the K ops of every edge (their Eq. 2's mixing weights)."""
        return {kind: torch.softmax(self.alphas[kind], dim=-1) for kind in CELL_KINDS}

    def edge_weights(self) -> dict[str, torch.Tensor]:
        """softmax of β over the incoming edges of every node (their Eq. 3)."""
        return {kind: normalize_edges(self.betas[kind], self.s.nodes) for kind in CELL_KINDS}

    def mixed_weights(self, *, detach: bool = False) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """``{kind: (softmax(α), normalized β)}`` as
        :meth:`~cpnas.partialchannel.PartialChannelNetwork.forward_mixed` takes them."""
        ops, edges = self.op_weights(), self.edge_weights()
        if detach:
            return {k: (ops[k].detach(), edges[k].detach()) for k in CELL_KINDS}
        return {k: (ops[k], edges[k]) for k in CELL_KINDS}

    def forward(self, x: torch.Tensor, weights: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """The mixed supernet (:meth:`~cpnas.partialchannel.PartialChannelNetwork.forward_mixed`) in this
        strategy's memory format."""
        return self.net.forward_mixed(x.contiguous(memory_format=self.memory_format), weights)

    # --- one epoch ---------------------------------------------------------------

    def schedule(self) -> list[dict[str, Any]]:
        return self._schedule

    def _next_arch_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next batch of the architecture split, starting a new (reshuffled) pass when needed."""
        loader = self.ctx.arch_loader
        for _ in range(2):
            if self._arch_iter is None:
                loader.set_epoch(self.arch_passes)
                self.arch_passes += 1
                self._arch_iter = iter(loader)
            try:
                return next(self._arch_iter)
            except StopIteration:
                self._arch_iter = None
        raise CpnasError("the PC-DARTS architecture split yields no batch; it is empty")

    def arch_step(self) -> torch.Tensor:
        """One first-order Adam step on (α, β) with the loss of an architecture-split batch.

        Returns the (detached) loss; the weights are not touched, only the BN running
        statistics move (the step runs in train mode, as PC-DARTS' ``Architect.step``).
        """
        x, y = self._next_arch_batch()
        x = x.to(self.ctx.device, non_blocking=True)
        y = y.to(self.ctx.device, non_blocking=True)
        params = self.arch_parameters()
        self.arch_opt.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.forward(x, self.mixed_weights()), y)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"non-finite loss ({loss.item()}) in a PC-DARTS architecture step; "
                                     f"lower search.pc_arch_lr and rerun with --resume")
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        for p, g in zip(params, grads):
            p.grad = torch.zeros_like(p) if g is None else g
        distributed.all_reduce_mean([p.grad for p in params])  # every rank's α, β take the same step
        self.arch_opt.step()
        return loss.detach()

    def run_epoch(self, epoch: int) -> dict[str, Any]:
        ctx, s, pc = self.ctx, self.s, self.pc
        step = self._schedule[epoch]
        lr = cosine_lr(self._pc_lr, s.lr_min, epoch, pc.pc_epochs)
        set_lr(self.weight_opt, lr)
        ctx.train_loader.set_epoch(epoch)
        self._arch_iter = None  # every epoch starts a new pass over the architecture split
        arch_losses: list[torch.Tensor] = []

        def before_step(i: int, x: torch.Tensor, y: torch.Tensor) -> None:
            if step["arch_updates"]:
                arch_losses.append(self.arch_step())

        fmt = self.memory_format
        stats = train_one_epoch(lambda x: self.weight_step_net(x.contiguous(memory_format=fmt),
                                                               self.mixed_weights(detach=True)),
                                self.net.parameters(), ctx.train_loader, self.weight_opt, self.loss_fn,
                                device=ctx.device, grad_clip=s.grad_clip, modules=[self.net],
                                before_step=before_step, desc=f"pcdarts {epoch + 1}/{pc.pc_epochs}")
        self._arch_iter = None
        with torch.no_grad():
            weights = self.mixed_weights(detach=True)
        mixed = lambda x: self.forward(x, weights)  # noqa: E731
        loader = ctx.calib_loader if ctx.calib_loader is not None else ctx.train_loader
        recalibrate_bn(mixed, [self.net], [b for _, b in zip(range(s.calibration_batches), loader)],
                       device=ctx.device)
        score = evaluate(mixed, ctx.score_loader, device=ctx.device, modules=[self.net], train_mode_bn=False,
                         topk=(1,), loss_fn=self.loss_fn, desc="score pcdarts")
        genotype = self.genotype()
        self.genotypes.append({"epoch": epoch, "genotype": genotype.to_dict()})
        record = {**step, "lr": lr, "train_loss": stats.loss, "train_acc": stats.acc,
                  "arch_acc": score["acc"], "arch_loss": score["loss"], "arch_steps": len(arch_losses),
                  "arch_step_loss": self._mean_over_ranks(torch.stack(arch_losses).mean().item())
                  if arch_losses else None,
                  "genotype": genotype.to_dict(), **self._weights_record(),
                  "train_seconds": stats.seconds, "eval_seconds": score["seconds"],
                  "seconds": stats.seconds + score["seconds"]}
        log.info("epoch %d/%d%s  lr=%.4g  train_acc=%.4f  arch_acc=%.4f", epoch + 1, pc.pc_epochs,
                 "" if step["arch_updates"] else " (warm-up)", lr, stats.acc, score["acc"])
        return record

    @staticmethod
    def _mean_over_ranks(value: float) -> float:
        """``value`` averaged over data-parallel ranks (each measured it on its shard); itself in one process."""
        return distributed.all_reduce_sum([value])[0] / distributed.world_size()

    def _weights_record(self) -> dict[str, Any]:
        with torch.no_grad():
            ops, edges = self.op_weights(), self.edge_weights()
            return {"alphas": {k: ops[k].cpu().tolist() for k in CELL_KINDS},
                    "edge_weights": {k: edges[k].cpu().tolist() for k in CELL_KINDS},
                    "betas": {k: self.betas[k].detach().cpu().tolist() for k in CELL_KINDS}}

    # --- results and resumption ----------------------------------------------------

    def genotype(self) -> Genotype:
        with torch.no_grad():
            return derive_genotype(self.op_weights(), self.edge_weights(), self.s.nodes)

    score_names = ("alpha_loglik", "alpha_weight")

    def score_cells(self, cells: list[Genotype], *, max_images: int | None = None) -> list[dict[str, float]]:
        """How much the relaxed architecture weights a cell, from α and the edge weights β̃.

        ``alpha_loglik``: Σ over the cell's edges (i, j, o) of log(softmax(α_{i,j})_o · β̃_{i,j}),
        the quantity whose per-node maximum the derivation keeps (:func:`~cpnas.partialchannel.derive_genotype`);
        ``alpha_weight``: the mean of those products. No forward pass (``max_images`` is unused).
        """
        index = {edge: k for k, edge in enumerate(self.edges)}
        with torch.no_grad():
            ops, edges = self.op_weights(), self.edge_weights()
            out = []
            for cell in cells:
                terms = []
                for kind in CELL_KINDS:
                    for op, i, j in cell.cell(kind)[0]:
                        k = index[(i, j)]
                        terms.append(float(ops[kind][k, PRIMITIVES.index(op)] * edges[kind][k]))
                out.append({"alpha_loglik": sum(math.log(t) for t in terms),
                            "alpha_weight": sum(terms) / len(terms)})
        return out

    def alpha_entropy(self) -> dict[str, float]:
        """How far softmax(α) moved from uniform: :func:`alpha_movement` of the current α."""
        with torch.no_grad():
            return alpha_movement({k: self.op_weights()[k].tolist() for k in CELL_KINDS})

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(),
                "alphas": {k: self.alphas[k].detach().cpu().clone() for k in CELL_KINDS},
                "betas": {k: self.betas[k].detach().cpu().clone() for k in CELL_KINDS},
                "weight_opt": self.weight_opt.state_dict(), "arch_opt": self.arch_opt.state_dict(),
                "arch_passes": self.arch_passes, "genotypes": [dict(g) for g in self.genotypes]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        with torch.no_grad():
            for kind in CELL_KINDS:
                self.alphas[kind].copy_(state["alphas"][kind])
                self.betas[kind].copy_(state["betas"][kind])
        self.weight_opt.load_state_dict(state["weight_opt"])
        self.arch_opt.load_state_dict(state["arch_opt"])
        self.arch_passes = int(state["arch_passes"])
        self._arch_iter = None
        self.genotypes = [dict(g) for g in state["genotypes"]]

    def artifacts(self) -> dict[str, Any]:
        return {"alphas.json": {"primitives": list(PRIMITIVES), "edges": [list(e) for e in self.edges],
                                "partial_k": self.pc.pc_partial_k, **self._weights_record(), **self.alpha_entropy(),
                                "genotypes": self.genotypes}}
