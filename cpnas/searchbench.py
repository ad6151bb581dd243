"""``make bench`` (b): the paper's search-speed claim (§3.2, "30 % faster than PC-DARTS") on this machine.

One search epoch of each strategy of :data:`cpnas.ablation.SPEED_CLAIM` on the same
synthetic images at the same scale, one epoch of each kind its plan has
(:meth:`~cpnas.strategy_base.Strategy.epoch_kind`: PC-DARTS' warm-up epochs train the
weights only), and each search's total projected to the paper's schedule
(:meth:`~cpnas.strategy_base.Strategy.plan` at ``paper``: its epochs of each kind) and
the paper's data fractions.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from cpnas import data
from cpnas.ablation import SPEED_CLAIM
from cpnas.config import get_config
from cpnas.errors import CpnasError
from cpnas.strategy_base import SearchContext, beta_p_of, get_strategy, title_of

CIFAR_TRAIN = 50_000
"""Images of CIFAR-10's training set, of which the paper's search trains on ``search.train_fraction``."""


def _epoch_key(name: str, kind: str) -> str:
    return f"{name}_{kind}_epoch_s" if kind else f"{name}_epoch_s"


def _paper_epochs(name: str) -> dict[str, int]:
    """The paper's schedule of strategy ``name``: its number of epochs of each kind, in order of appearance."""
    cls = get_strategy(name)
    counts: dict[str, int] = {}
    for step in cls.plan(get_config("paper"))[0]:
        kind = cls.epoch_kind(step)
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def search_epochs(scale: str = "cpu", images: int = 512, device: str = "cpu",
                  strategies: tuple[str, ...] = SPEED_CLAIM) -> dict[str, Any]:
    """(b): one epoch of each kind of each strategy on the same synthetic images at ``scale``, projected.

    The epoch of a kind is the first of that kind in the strategy's schedule at ``scale``; its
    cost is :meth:`~cpnas.strategy_base.Strategy.epoch_seconds` of its record (else its wall
    clock). Projection to the paper's schedule: time scales with the images an epoch trains on.
    """
    cfg = get_config(scale)
    s = cfg.search
    dev = torch.device(device)
    pool = data.synthetic_images(2 * images, seed=0)
    train = data.subset(pool, torch.arange(images))
    other = data.subset(pool, torch.arange(images, 2 * images))
    paper = get_config("paper").search  # the paper's score : train ratio (5 % : 50 %), which the projection assumes
    n_score = max(1, round(images * paper.score_fraction / paper.train_fraction))
    score = data.subset(other, torch.arange(n_score))

    def loader(split, shuffle: bool, augment: bool) -> data.TensorLoader:
        return data.TensorLoader(split, s.batch_size, shuffle=shuffle, augment=augment, device=dev, seed=0)

    results: dict[str, Any] = {"scale": scale, "images": images, "score_images": n_score,
                               "batch": s.batch_size, "C": s.init_channels, "layers": s.layers, "strategies": {}}
    scale_up = paper.train_fraction * CIFAR_TRAIN / images
    for name in strategies:
        cls = get_strategy(name)
        counts = _paper_epochs(name)
        schedule = cls.plan(cfg)[0]
        first = {}
        for epoch, step in enumerate(schedule):
            first.setdefault(cls.epoch_kind(step), epoch)
        missing = [kind or "ordinary" for kind in counts if kind not in first]
        if missing:
            raise CpnasError(f"the {name} schedule at scale {scale} has no {', '.join(missing)} epoch to time")
        ctx = SearchContext(cfg=cfg, device=dev, train_loader=loader(train, True, True),
                            score_loader=loader(score, False, False), num_classes=10, seed=0,
                            beta_p=beta_p_of(name, None, s.beta_p),
                            arch_loader=loader(other, True, True) if cls.needs_arch_split else None)
        strategy = cls(ctx)
        seconds = {}
        for kind, epoch in sorted(((k, first[k]) for k in counts), key=lambda ke: ke[1]):
            t0 = time.perf_counter()
            record = strategy.run_epoch(epoch)
            wall = time.perf_counter() - t0
            own = cls.epoch_seconds(record)
            seconds[kind] = wall if own is None else own
            results[_epoch_key(name, kind)] = seconds[kind]
        results["strategies"][name] = counts
        results[f"projected_{name}_s"] = scale_up * sum(n * seconds[kind] for kind, n in counts.items())
    if len(strategies) == 2:
        fast, slow = strategies
        results[f"{fast}_over_{slow}_total"] = results[f"projected_{fast}_s"] / results[f"projected_{slow}_s"]
    return results


def search_markdown(b: dict[str, Any]) -> list[str]:
    """(b) as lines of markdown: one row per strategy and kind of epoch, and the projected ratio."""
    lines = [f"## (b) One search epoch on the same {b['images']} images, scale `{b['scale']}` "
             f"(C={b['C']}, {b['layers']} cells, batch {b['batch']}, scoring {b['score_images']} images)",
             "", "| strategy | epoch (s) | projected paper search (h) |", "|---|---|---|"]
    for name, counts in b["strategies"].items():
        kinds = list(counts)
        epochs = " + ".join(f"{n} {kind}" if kind else str(n) for kind, n in counts.items())
        for kind in kinds:
            projected = (f"{b[f'projected_{name}_s'] / 3600:.2f} ({epochs} epochs)" if kind == kinds[-1] else "")
            lines.append(f"| {name}{' ' + kind if kind else ''} | {b[_epoch_key(name, kind)]:.1f} | {projected} |")
    names = list(b["strategies"])
    if len(names) == 2:
        fast, slow = names
        lines += ["", f"**{title_of(fast)} / {title_of(slow)} projected search time: "
                      f"{b[f'{fast}_over_{slow}_total']:.2f}** (the paper: CP-NAS 30 % faster, i.e. ≈ 0.70, on 6 "
                      f"TITAN V GPUs). Projection: per-image epoch cost × images per epoch at the paper's data "
                      f"fractions × epochs."]
    return lines + [""]
