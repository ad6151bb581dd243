"""The kernel-level Child-Parent loss (§2.4, Eq. 3-4).

.. math::

    \\mathcal{L} = \\mathcal{L}_{CE}
        + w_K \\sum_{c,l} \\mathrm{MSE}(H^l_c, \\hat H^l_c)
        + \\frac{\\lambda}{2} \\sum_s \\| f_{C,s}(\\hat H) - \\bar f_{C,s}(H) \\|^2

* **Kernel term** (first term of Eq. 3). For every 1-bit convolution *l* (every
  :class:`~cpnas.binary.BinaryConv2d` of the Child) and every output filter *c*,
  the mean squared error between a full-precision filter ``H_c`` and the
  reconstructed 1-bit filter ``Ĥ_c = α_c · sign(W_c)``
  (:func:`cpnas.binary.binarize_weight`), summed over filters and layers, as the
  equation is written (a sum of per-filter means, not one mean over all weights).
  ``w_K`` = :attr:`~cpnas.config.LossConfig.kernel_weight` (1 in Eq. 3).
* **Center term** (second term). ``f_{C,s}`` is "the feature map of the last
  convolutional layer for the s-th sample": we take the input of the network's
  global pooling, i.e. the output of the last cell (the last feature map before
  the classifier; the stem convs come first, and every conv of the last cell
  feeds it), flattened per sample. ``f̄`` is the class-specific mean feature map,
  kept as running class means (momentum
  :attr:`~cpnas.config.LossConfig.center_momentum`, updated without gradient,
  as the centres of center loss, Wen et al., ECCV 2016). ``Σ_s`` is taken as the
  mean over the mini-batch, as center loss's reference implementation does, so
  that λ (:attr:`~cpnas.config.LossConfig.center_lambda`, not stated in the
  paper ⚑) does not depend on the batch size; ``‖·‖²`` sums over every element
  of the feature map. Because that sum runs over thousands of values, λ must be
  small: at λ = 10⁻³ the term dominated the cross-entropy and the network
  shrank its last feature map to a near-constant (chance accuracy on synthetic
  data that cross-entropy alone learns); the default 10⁻⁵ keeps the term at a
  fraction of the cross-entropy at initialisation.
* ``L_CE`` is the conventional loss of the run: cross-entropy with the run's
  label smoothing, plus the auxiliary tower's weighted CE when the network has
  one (:func:`cpnas.train.cross_entropy_loss`).

⚑ **Whose full-precision filter is H** (:attr:`~cpnas.config.LossConfig.kernel_source`):

* ``"child"`` (default) — the Child's own latent real weights ``W``: the term is
  ``MSE(W_c, α_c sign(W_c))``, the projection / reconstruction loss of PCNN (Gu et
  al., AAAI 2019) and BONN (Zhao et al., ICCV 2019) that §2.4 says it is
  "inspired by", and the quantity XNOR-Net's α minimises. It needs no second
  network. Its gradient reaches ``W`` through both ``H = W`` and ``Ĥ`` (through
  α and, by the clipped straight-through estimator, through ``sign``).
* ``"parent"`` — the corresponding filter of a trained full-precision Parent of
  the same architecture (built with ``REAL`` precision, so every ``BinaryConv2d``
  of the Child has an ``nn.Conv2d`` of the same name and shape in the Parent):
  ``MSE(H^P_c, α_c sign(W_c))``. The Parent is frozen (its filters are targets,
  detached); the gradient reaches the Child's latent weights through ``Ĥ``.

The loss is a small object called as ``loss_fn(output, target)`` by
:func:`cpnas.train.train_one_epoch`. It reads the feature map through a forward
pre-hook on the Child's ``global_pooling`` module (every network of
:mod:`cpnas.networks` has one), so the networks need no change. The pure
functions :func:`kernel_loss`, :func:`center_loss` and :func:`update_centers`
hold the arithmetic and are tested against hand computations.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import torch
from torch import nn

from cpnas import distributed
from cpnas.binary import BinaryConv2d, binarize_weight
from cpnas.config import LossConfig
from cpnas.errors import CpnasError
from cpnas.train import LossFn, cross_entropy_loss

KERNEL_SOURCES = ("child", "parent")
LOSSES = ("cp", "ce")
"""Training losses of ``cpnas train --loss``: the CP loss of Eq. 4, or plain cross-entropy."""


# --------------------------------------------------------------------------- pure functions


def filter_mse(h: torch.Tensor, h_hat: torch.Tensor) -> torch.Tensor:
    """``Σ_c MSE(H_c, Ĥ_c)`` over the output filters ``c`` of one layer (dim 0)."""
    return (h - h_hat).pow(2).flatten(1).mean(dim=1).sum()


def kernel_loss(pairs: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Eq. 3, first term: ``Σ_{c,l} MSE(H^l_c, Ĥ^l_c)`` with ``Ĥ = α · sign(W)``.

    ``pairs`` yields ``(H, W)`` per layer: ``H`` the full-precision filters, ``W``
    the Child's latent weights from which ``Ĥ`` is reconstructed
    (:func:`cpnas.binary.binarize_weight`). For the ``child`` reading ``H is W``.
    """
    total = None
    for h, w in pairs:
        if h.shape != w.shape:
            raise ValueError(f"full-precision filter of shape {tuple(h.shape)} does not match the "
                             f"1-bit filter of shape {tuple(w.shape)}")
        term = filter_mse(h, binarize_weight(w))
        total = term if total is None else total + term
    if total is None:
        raise CpnasError("the CP loss found no 1-bit convolution (BinaryConv2d) in the network; "
                         "train a real-precision network with --loss ce")
    return total


def center_loss(features: torch.Tensor, target: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Eq. 3, second term without λ/2: ``mean_s ‖f_s − f̄_{y_s}‖²``.

    ``features`` is ``B×…`` (flattened per sample), ``centers`` ``num_classes×D``
    (treated as constants). The squared norm sums over the feature elements; the
    sum over samples is taken as the batch mean (center loss, Wen et al. 2016).
    """
    f = features.flatten(1)
    diff = f - centers.detach()[target]
    return diff.pow(2).sum(dim=1).mean()


@torch.no_grad()
def update_centers(centers: torch.Tensor, seen: torch.Tensor, features: torch.Tensor, target: torch.Tensor,
                   momentum: float) -> None:
    """Running class means, in place: ``f̄_k ← m f̄_k + (1 − m) · mean_{s: y_s = k} f_s``.

    Only classes present in the batch move. A class seen for the first time
    (``seen[k]`` False) starts at its batch mean instead of being pulled from zero.
    """
    f = features.detach().flatten(1).to(centers.dtype)
    num_classes = centers.shape[0]
    counts = torch.bincount(target, minlength=num_classes).to(centers.dtype)
    sums = torch.zeros_like(centers).index_add_(0, target, f)
    present = counts > 0
    batch_mean = sums[present] / counts[present, None]
    m = torch.where(seen[present], torch.full_like(counts[present], momentum), torch.zeros_like(counts[present]))
    centers[present] = m[:, None] * centers[present] + (1 - m[:, None]) * batch_mean
    seen |= present


# --------------------------------------------------------------------------- the loss object


def binary_convs(model: nn.Module) -> Iterator[tuple[str, BinaryConv2d]]:
    """``(name, module)`` of every 1-bit convolution of ``model`` (the ``l`` of Eq. 3).

    The auxiliary tower is real and holds none.
    """
    for name, module in model.named_modules():
        if isinstance(module, BinaryConv2d):
            yield name, module


class CPLoss:
    """The CP loss of Eq. 4 as ``loss_fn(output, target)`` (see the module docstring).

    ``child`` is the network being trained (its ``global_pooling`` is hooked);
    ``parent`` the trained full-precision network of the same architecture, needed
    only for ``config.kernel_source == "parent"`` (ignored otherwise). ``num_classes``
    sizes the class means. After each call, :attr:`last` holds the detached terms;
    :meth:`pop_stats` returns their means since the previous call (for the
    per-epoch history). :meth:`state_dict` / :meth:`load_state_dict` carry the
    running class means through checkpoints, so a resumed run is exact.
    """

    def __init__(self, child: nn.Module, *, num_classes: int, config: LossConfig | None = None,
                 parent: nn.Module | None = None, label_smoothing: float = 0.0, aux_weight: float = 0.0) -> None:
        self.config = config or LossConfig()
        if self.config.kernel_source not in KERNEL_SOURCES:
            raise CpnasError(f"unknown loss.kernel_source {self.config.kernel_source!r}; choose one of "
                             f"{', '.join(KERNEL_SOURCES)}")
        if not 0.0 <= self.config.center_momentum < 1.0:
            raise CpnasError(f"loss.center_momentum must be in [0, 1), got {self.config.center_momentum}")
        self.num_classes = int(num_classes)
        self.ce: LossFn = cross_entropy_loss(label_smoothing, aux_weight)
        self.layers = list(binary_convs(child))
        if not self.layers:
            raise CpnasError("the CP loss needs a 1-bit network (BinaryConv2d layers), but this one has none; "
                             "use --loss ce for --precision real")
        self.parent_filters: list[torch.Tensor] | None = None
        if self.config.kernel_source == "parent":
            if parent is None:
                raise CpnasError("loss.kernel_source='parent' needs a trained full-precision Parent network")
            self.parent_filters = _matching_parent_filters(self.layers, parent)
        pool = getattr(child, "global_pooling", None)
        if not isinstance(pool, nn.Module):
            raise CpnasError(f"the CP loss reads the last feature map at the input of 'global_pooling', "
                             f"which {type(child).__name__} lacks")
        self._features: torch.Tensor | None = None
        self._hook = pool.register_forward_pre_hook(self._capture)
        self.centers: torch.Tensor | None = None
        self.seen: torch.Tensor | None = None
        self.last: dict[str, float] = {}
        self._sums: dict[str, float] = {}
        self._calls = 0

    def _capture(self, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        self._features = inputs[0]

    def close(self) -> None:
        """Remove the feature hook from the network."""
        self._hook.remove()

    def kernel_pairs(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(H, W)`` per 1-bit layer: ``H`` the Parent's filters (detached) or the latent weights themselves."""
        if self.parent_filters is None:
            return ((m.weight, m.weight) for _, m in self.layers)
        return ((h.to(m.weight.device), m.weight) for h, (_, m) in zip(self.parent_filters, self.layers))

    def kernel_term(self) -> torch.Tensor:
        return kernel_loss(self.kernel_pairs())

    def _ensure_centers(self, features: torch.Tensor) -> None:
        dim = features[0].numel()
        if self.centers is None:
            self.centers = features.new_zeros(self.num_classes, dim, dtype=torch.float32)
            self.seen = torch.zeros(self.num_classes, dtype=torch.bool, device=features.device)
        elif self.centers.shape[1] != dim:
            raise CpnasError(f"the feature map changed size ({self.centers.shape[1]} → {dim} values per sample); "
                             f"the CP loss's class means belong to another network or input size")

    def __call__(self, output: Any, target: torch.Tensor) -> torch.Tensor:
        features, self._features = self._features, None
        if features is None or features.shape[0] != target.shape[0]:
            raise RuntimeError("the CP loss saw no feature map for this batch: call the network it was "
                               "built with before the loss")
        ce = self.ce(output, target)
        kernel = self.kernel_term()
        self._ensure_centers(features)
        # Data-parallel: the class means move with the global batch (every rank's samples), so
        # they stay equal on every rank and equal to a one-process run's (cpnas.distributed).
        batch_f, batch_t = distributed.all_gather_cat(features.detach()), distributed.all_gather_cat(target)
        # A class without a mean yet starts at its batch mean (no pull from zero); the term
        # then uses the means as they were before this batch's momentum update.
        unseen = ~self.seen[batch_t]
        if bool(unseen.any()):
            update_centers(self.centers, self.seen, batch_f[unseen], batch_t[unseen], 0.0)
        center = center_loss(features.float(), target, self.centers)
        update_centers(self.centers, self.seen, batch_f, batch_t, self.config.center_momentum)
        total = ce + self.config.kernel_weight * kernel + 0.5 * self.config.center_lambda * center
        self.last = {"ce": ce.item(), "kernel": kernel.item(), "center": center.item()}
        for k, v in self.last.items():
            self._sums[k] = self._sums.get(k, 0.0) + v
        self._calls += 1
        return total

    def pop_stats(self) -> dict[str, float]:
        """Mean of each term (``loss_ce``, ``loss_kernel``, ``loss_center``) since the last call."""
        out = {f"loss_{k}": v / max(self._calls, 1) for k, v in self._sums.items()}
        self._sums, self._calls = {}, 0
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"centers": None if self.centers is None else self.centers.detach().cpu(),
                "seen": None if self.seen is None else self.seen.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        device = self.layers[0][1].weight.device
        self.centers = None if state["centers"] is None else state["centers"].to(device)
        self.seen = None if state["seen"] is None else state["seen"].to(device)


def _matching_parent_filters(layers: list[tuple[str, BinaryConv2d]], parent: nn.Module) -> list[torch.Tensor]:
    """The Parent's filter for every 1-bit layer of the Child, matched by module name and shape."""
    modules = dict(parent.named_modules())
    filters = []
    for name, conv in layers:
        p = modules.get(name)
        if not isinstance(p, nn.Conv2d) or isinstance(p, BinaryConv2d):
            raise CpnasError(f"the Parent has no full-precision convolution named {name!r}; build it from the "
                             f"same genotype and size with precision 'real'")
        if p.weight.shape != conv.weight.shape:
            raise CpnasError(f"Parent layer {name!r} has filters of shape {tuple(p.weight.shape)}, the Child "
                             f"{tuple(conv.weight.shape)}; build both from the same genotype and size")
        filters.append(p.weight.detach())  # shares storage: a reloaded Parent is seen
    return filters


def make_loss(kind: str, model: nn.Module, *, num_classes: int, config: LossConfig | None = None,
              parent: nn.Module | None = None, label_smoothing: float = 0.0, aux_weight: float = 0.0) -> LossFn:
    """The training loss ``kind``: ``cp`` (Eq. 4, :class:`CPLoss`) or ``ce`` (cross-entropy only)."""
    if kind == "ce":
        return cross_entropy_loss(label_smoothing, aux_weight)
    if kind == "cp":
        return CPLoss(model, num_classes=num_classes, config=config, parent=parent,
                      label_smoothing=label_smoothing, aux_weight=aux_weight)
    raise CpnasError(f"unknown loss {kind!r}; choose one of {', '.join(LOSSES)}")


__all__ = ["CPLoss", "KERNEL_SOURCES", "LOSSES", "binary_convs", "center_loss", "filter_mse", "kernel_loss",
           "make_loss", "update_centers"]
