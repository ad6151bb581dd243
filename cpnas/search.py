"""The one search loop: seeding, data splits, epochs, checkpoints, history, artifacts.

``run_search`` drives any :class:`~cpnas.strategy_base.Strategy` the same way and
writes, in ``out`` (every write atomic):

* ``config.json``   — the resolved configuration and the run's arguments;
* ``history.json``  — one record per search epoch (round, t, draw, sampled op per
  edge, A_C, A_P, z, losses, wall-clock);
* ``checkpoint.pt`` — everything needed to continue, after every epoch;
* ``genotype.json`` — the result, in the public format (README);
* ``cost.json``     — wall-clock, device, GPU-days (on a GPU);
* strategy extras, e.g. ``indicator.json`` (e(o) of every edge after every round
  and the op removed).

``resume=True`` continues from ``checkpoint.pt``; data order is a function of
(seed, epoch) only, so a killed and resumed run ends with the same genotype and
history (wall-clock aside) as an uninterrupted one. Epochs, checkpoints, resume,
RNG state and the non-finite guard are :mod:`cpnas.driver`'s, shared with training.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cpnas import data
from cpnas import distributed
from cpnas.config import Config
from cpnas.data.registry import for_dataset
from cpnas.driver import CHECKPOINT, EpochDriver
from cpnas.errors import CpnasError
from cpnas.genotype import Genotype
from cpnas.io import read_json, remove_orphaned_temps, write_json
from cpnas.paths import portable
from cpnas.runs.files import COMPLETE, CONFIG, COST, GENOTYPE, HISTORY, INDICATOR
from cpnas.runs.keys import search_key
from cpnas.runs.layout import search_dir
from cpnas.strategy_base import SearchContext, Strategy, beta_p_of, get_strategy
from cpnas.train import resolve_device

log = logging.getLogger(__name__)


@dataclass
class SearchResult:
    genotype: Genotype
    history: list[dict[str, Any]]
    cost: dict[str, Any]
    out: Path


def search_data(cfg: Config, dataset: str, data_root: Path | None, seed: int, device: torch.device,
                with_arch_split: bool = False, batch_size: int | None = None):
    """Search-train and search-score loaders (§3.1: 50% / 5% of the training set).

    Returns ``(images, train, score, arch, calib)``. With ``with_arch_split``
    (a strategy's ``needs_arch_split``) ``arch`` is a third, disjoint split of the search-train size
    for the architecture updates (else None). ``batch_size`` (default ``search.batch_size``; a
    strategy's :meth:`~cpnas.strategy_base.Strategy.search_batch_size`) batches the search-train and
    architecture splits. ``score`` yields the score split in a seeded
    random order; ``calib`` yields fixed, un-augmented search-train batches that
    re-estimate BN statistics before each score.
    """
    s = cfg.search
    images = data.load_dataset(cfg, dataset, "train", data_root, seed=seed)
    n = images.labels.shape[0]
    # the trainings' validation split is never searched on (it selects recipes and reports val top-1)
    held_out = data.validation_indices(n, data.train_config(cfg, dataset).val_fraction, labels=images.labels)
    if with_arch_split:
        if 2 * s.train_fraction > 1:
            raise CpnasError("a search with an architecture split needs 2 × search.train_fraction ≤ 1 (weights "
                             "and architecture on disjoint halves)")
        idx_train, idx_arch = data.search_split(n, s.train_fraction, s.train_fraction, seed, labels=images.labels,
                                             exclude=held_out)
        idx_score = idx_arch
    else:
        idx_train, idx_score = data.search_split(n, s.train_fraction, s.score_fraction, seed, labels=images.labels,
                                              exclude=held_out)
        idx_arch = None
    common = dict(device=device, seed=seed)
    train_batch = s.batch_size if batch_size is None else batch_size
    train = data.TensorLoader(data.subset(images, idx_train), train_batch, shuffle=True, drop_last=False,
                           augment=True, **common)
    # The score split in one seeded random order (its indices come sorted, and image folders
    # are stored class by class): every draw is scored on the same batches, each of mixed classes.
    score_order = idx_score[torch.randperm(len(idx_score), generator=torch.Generator().manual_seed(seed + 3))]
    score = data.TensorLoader(data.subset(images, score_order), s.batch_size, shuffle=False, augment=False, **common)
    # BN re-estimation before every score (search.calibration_batches): fixed, un-augmented batches
    # of the search-train split, the same for every draw.
    calib = data.TensorLoader(data.subset(images, idx_train), train_batch, shuffle=True, augment=False,
                           device=device, seed=seed + 2)
    arch = None
    if idx_arch is not None:
        arch = data.TensorLoader(data.subset(images, idx_arch), train_batch, shuffle=True, augment=True,
                              device=device, seed=seed + 1)
    # Data-parallel (cpnas.distributed): every rank trains on its shard of each global batch and
    # scores its shard of the score split (the counts are summed over ranks). BN re-estimation
    # reads whole batches on every rank (the same statistics as one process) unless BN is
    # synchronised, when each rank reads its shard and the statistics are the global batch's.
    train = distributed.shard_loader(train)
    arch = distributed.shard_loader(arch)
    score = distributed.shard_loader(score, even=False)
    if distributed.sync_bn():
        calib = distributed.shard_loader(calib)
    return images, train, score, arch, calib


def run_search(strategy: str, cfg: Config, *, dataset: str = data.DEFAULT_DATASET, data_root: Path | None = None,
               seed: int = 0, out: Path | None = None, resume: bool = False, device: str = "auto",
               beta_p: float | None = None) -> SearchResult:
    """Run (or resume) one search and write its artifacts to ``out``.

    ``cfg`` is resolved for ``dataset`` first (:func:`cpnas.data.registry.for_dataset`: §3.1's ImageNet
    search lr and β_P, except where the caller set them), as ``cpnas search --dataset`` does.
    """
    cfg = for_dataset(cfg, dataset)
    out = Path(out) if out is not None else search_dir(cfg.scale, strategy, seed, beta_p, dataset)
    factory = get_strategy(strategy)
    ckpt_path = out / CHECKPOINT
    if not resume and (out / HISTORY).exists():
        raise CpnasError(f"{out} already holds a search; pass --resume to continue it or choose another --out")
    if resume and is_finished(out) and not ckpt_path.exists():
        raise CpnasError(f"{out} holds a finished search without a checkpoint; nothing to resume")
    dev = resolve_device(device)
    torch.manual_seed(seed)
    beta = beta_p_of(strategy, beta_p, cfg.search.beta_p)
    driver = EpochDriver(out)
    state = driver.read_checkpoint() if resume else None
    if state is not None:  # the run's identity is checked before any data loads
        if not {"strategy", "run_args", "config"} <= set(state):
            raise CpnasError(f"{ckpt_path} is not a search checkpoint (a training run's?); resume it with "
                             f"'cpnas train', or choose another --out")
        mismatch = _identity_mismatch(state["run_args"], {"strategy": strategy, "seed": seed, "beta_p": beta,
                                                          "dataset": dataset, "data_root": portable(data_root)})
        if mismatch:
            raise CpnasError(f"{ckpt_path} belongs to another search ({mismatch}); resume it with the options it "
                             f"was started with, or choose another --out")
        if search_key(state["config"]) != search_key(cfg.to_dict()):
            raise CpnasError(f"{ckpt_path} was written with another configuration; resume with the same "
                             f"--scale and --set options, or start a new --out")
        from cpnas.driver import restore_forms

        restore_forms(state)  # the forms the search started with, before its first kernel here
    images, train, score, arch, calib = search_data(cfg, dataset, data_root, seed, dev,
                                                    with_arch_split=factory.needs_arch_split,
                                                    batch_size=factory.search_batch_size(cfg))
    remove_orphaned_temps(out)  # only once the arguments and the data are known good
    ctx = SearchContext(cfg=cfg, device=dev, train_loader=train, score_loader=score,
                        num_classes=len(images.classes), seed=seed, beta_p=beta, arch_loader=arch,
                        calib_loader=calib)
    strat: Strategy = factory(ctx)
    total = strat.total_epochs
    run_args = {"strategy": strategy, "dataset": dataset, "dataset_description": images.description,
                "data_root": portable(data_root), "seed": seed, "beta_p": ctx.beta_p,
                "device": str(dev), "epochs": total, "search_train_images": len(train.labels),
                "search_score_images": len(score.labels)}
    if distributed.world_size() > 1:  # recorded, not part of the identity: a run resumes under another N
        run_args.update(world_size=distributed.world_size(), sync_bn=distributed.sync_bn())
    write_json(out / CONFIG, {"config": cfg.to_dict(), "run": run_args})
    done = driver.run(strat.run_epoch, total, resume=resume, wall_clock_key="wall_clock",
                      state_dict=lambda: {"strategy": strat.state_dict(), "run_args": run_args,
                                          "config": cfg.to_dict()},
                      load_state_dict=lambda state: strat.load_state_dict(state["strategy"]))
    history, elapsed = done.history, done.elapsed
    genotype = strat.genotype()
    genotype.save(out / GENOTYPE)
    from cpnas import accel
    from cpnas.paths import git_commit

    cost = {**search_cost(elapsed, dev, total, images.description), "cpu_s": done.cpu_s,
            "git_commit": git_commit(),
            "acceleration": accel.describe(),
            "kernel_forms": dispatch_summary(), "kernel_forms_record": dispatch_record()}
    write_json(out / COST, cost)
    write_json(out / HISTORY, history)
    names = [CONFIG, GENOTYPE, COST, HISTORY]
    for name, obj in strat.artifacts().items():
        write_json(out / name, obj)
        names.append(name)
    write_json(out / COMPLETE, {"files": names, "finished": time.strftime("%Y-%m-%d %H:%M:%S")})  # last
    return SearchResult(genotype=genotype, history=history, cost=cost, out=out)


def score_cells(strategy: str, cfg: Config, out: Path, cells: list, *, seed: int = 0, beta_p: float | None = None,
                dataset: str = data.DEFAULT_DATASET, data_root: Path | None = None, device: str = "auto",
                max_images: int | None = None) -> list[dict[str, float]]:
    """Score ``cells`` (genotypes) with a finished search's trained state (:meth:`Strategy.score_cells`).

    The strategy is rebuilt on the search's data splits and loads the search's last
    checkpoint, which must still be in ``out`` (checkpoints are not committed: score in
    the session that ran the search).
    """
    out = Path(out)
    if not is_finished(out):
        raise CpnasError(f"{out}: no finished search to score cells with")
    state = EpochDriver(out).read_checkpoint()
    if state is None or "strategy" not in state:
        raise CpnasError(f"{out} holds no search checkpoint: its trained supernet is gone; rerun the search "
                         f"(move the folder away) to score cells with it")
    dev = resolve_device(device)
    factory = get_strategy(strategy)
    beta = beta_p_of(strategy, beta_p, cfg.search.beta_p)
    images, train, score, arch, calib = search_data(cfg, dataset, data_root, seed, dev,
                                                    with_arch_split=factory.needs_arch_split,
                                                    batch_size=factory.search_batch_size(cfg))
    ctx = SearchContext(cfg=cfg, device=dev, train_loader=train, score_loader=score,
                        num_classes=len(images.classes), seed=seed, beta_p=beta, arch_loader=arch,
                        calib_loader=calib)
    strat: Strategy = factory(ctx)
    strat.load_state_dict(state["strategy"])
    return strat.score_cells(list(cells), max_images=max_images)


def dispatch_record() -> dict[str, dict[str, str]]:
    """Every kernel-form choice of this process (``CPNAS_FORMS=@cost.json`` takes them on another machine)."""
    from cpnas import dispatch

    return dispatch.record()


def dispatch_summary() -> dict[str, dict[str, int]]:
    """How many kernel keys of each op went to each form in this process (:mod:`cpnas.dispatch`)."""
    from cpnas import dispatch

    return dispatch.summary()


def _identity_mismatch(stored: dict[str, Any], now: dict[str, Any]) -> str | None:
    """What differs between a checkpoint's run and the one asked for: strategy, seed, β_P, dataset, data root."""
    diffs = []
    for key in ("strategy", "seed", "beta_p", "dataset"):
        if key in stored and stored[key] != now[key]:
            diffs.append(f"{key} {stored[key]!r}, not {now[key]!r}")
    a, b = stored.get("data_root"), now.get("data_root")
    if a is not None and b is not None:
        from cpnas.paths import project_root

        if (project_root() / a).resolve() != (project_root() / b).resolve():
            diffs.append(f"data root {a!r}, not {b!r}")
    return "; ".join(diffs) or None


def search_cost(seconds: float, device: torch.device, epochs: int, dataset: str) -> dict[str, Any]:
    """Search cost as Table 1 reports it: GPU-days on a GPU; CPU wall-clock otherwise."""
    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    if gpus and distributed.world_size() > 1:  # data-parallel: one GPU per rank, on every node
        gpus = distributed.world_size()
    return {"wall_clock_s": seconds, "wall_clock_h": seconds / 3600, "device": device.type,
            "device_name": torch.cuda.get_device_name(device) if gpus else "cpu",
            "gpus": gpus, "gpu_days": seconds * max(gpus, 1) / 86400 if gpus else None,
            "epochs": epochs, "dataset": dataset}


def load_search(out: Path) -> SearchResult:
    """Read the artifacts of a finished search."""
    from cpnas.genotype import load_genotype

    out = Path(out)
    if not is_finished(out):
        raise CpnasError(f"{out}: no finished search ({COMPLETE} missing); run or resume it first, e.g. "
                         f"'cpnas search --out {out}' or 'make reproduce-fig5'")
    return SearchResult(genotype=load_genotype(out / GENOTYPE), history=read_json(out / HISTORY),
                        cost=read_json(out / COST), out=out)


def dry_run(strategy: str, cfg: Config, beta_p: float | None = None) -> dict[str, Any]:
    """The resolved configuration and epoch schedule of a search, without data or training."""
    cls = get_strategy(strategy)
    schedule, summary = cls.plan(cfg)
    beta = beta_p_of(strategy, beta_p, cfg.search.beta_p)
    return {"strategy": strategy, "scale": cfg.scale, "beta_p": beta, "epochs": len(schedule),
            "schedule": summary, "config": cfg.to_dict()}


def is_finished(out: Path) -> bool:
    return (out / COMPLETE).exists()


def load_indicator(out: Path) -> dict[str, Any]:
    """The ``indicator.json`` of a CP-NAS/BNAS search (e(o) of every edge after every round)."""
    return read_json(Path(out) / INDICATOR)


def config_table(cfg: Config, section: str = "search"):
    """DataFrame of one config section: value, the paper's value, whether it is a size field, and the source."""
    import pandas as pd

    from cpnas.config import PAPER, iter_fields

    paper = {k: v for k, v, _ in iter_fields(PAPER)}
    rows = [{"key": k, "value": v, "paper": paper[k], "size field": bool(m.get("size")),
             "source": m.get("source", "")}
            for k, v, m in iter_fields(cfg) if k.startswith(section + ".")]
    return pd.DataFrame(rows)


def cost_table(result: SearchResult):
    """One-row DataFrame with the measured search cost of a finished search."""
    import pandas as pd

    c = result.cost
    return pd.DataFrame([{"epochs": c["epochs"], "wall-clock (h)": round(c["wall_clock_h"], 3),
                          "device": c["device_name"], "GPU-days": c["gpu_days"], "dataset": c["dataset"],
                          "paper (GPU-days, 6 TITAN V)": 0.1}])
