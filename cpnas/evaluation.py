"""Training a found architecture (§3.1 "architecture evaluation"): build, train, measure.

* :func:`build_network` (:mod:`cpnas.runs.network`) — the evaluation network of a
  genotype at a named size and precision; :func:`evaluate_run` measures a finished
  training again, rebuilt by :func:`cpnas.runs.network.trained_network`.
* :func:`train_genotype` — one training run with :func:`cpnas.train.fit`, writing
  ``config.json``, ``history.json``, ``checkpoint.pt`` and finally
  ``metrics.json`` (test error, top-1/top-5, parameters, memory, FLOPs, epochs,
  wall-clock, device, scale, dataset) to its folder; resumable.

The run layer (:mod:`cpnas.runs`) loads a finished training or calls :func:`train_genotype`
(:func:`cpnas.runs.train_or_load`, the training stage of every run); the run key a training
folder records is :func:`cpnas.runs.keys.run_key`.

With ``loss.kernel_source = "parent"`` the CP loss needs the trained
full-precision Parent of the same genotype and size: it is trained first (plain
cross-entropy, ``precision = real``, the same recipe and data) in the ``parent/``
sub-folder of the run and then frozen.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cpnas import data
from cpnas.binary import get_precision
from cpnas.budgets import budget_name
from cpnas.config import Config, TrainConfig
from cpnas.errors import CpnasError
from cpnas.genotype import Genotype
from cpnas.io import load_checkpoint, read_json, remove_orphaned_temps, write_json
from cpnas.losses import LOSSES, make_loss
from cpnas.networks import memory_format_for
from cpnas.paths import portable
from cpnas.runs.files import CONFIG, METRICS, PARENT_DIR
from cpnas.runs.keys import run_key
from cpnas.runs.network import build_network, channels_of, read_run, trained_network
from cpnas.train import CHECKPOINT, FitResult, config_difference, fit, resolve_device

log = logging.getLogger(__name__)

"""§3.1: three CIFAR-10 model sizes (C = 56 / 72 / 112 at the paper scale)."""
def train_config(cfg: Config, dataset: str) -> TrainConfig:
    """The training recipe of ``dataset``: the config section its registry entry names (§3.1)."""
    return data.train_config(cfg, dataset)


def profile_network(genotype: Genotype, cfg: Config, *, dataset: str, size: str, precision: str,
                    num_classes: int) -> dict[str, Any]:
    """Params, memory (Mbit) and FLOPs (M) of the trained network (:mod:`cpnas.efficiency`, at inference)."""
    from cpnas.efficiency import profile

    tcfg = train_config(cfg, dataset)
    with torch.device("meta"):  # shapes only
        model = build_network(genotype, cfg, dataset=dataset, size=size, precision=precision,
                              num_classes=num_classes)
    prof = profile(model, (3, tcfg.image_size, tcfg.image_size))
    return {"params": prof.params, "params_m": prof.params_m, "binary_params": prof.binary_params,
            "real_params": prof.real_params, "memory_mbit": prof.memory_mbit,
            "memory_mbit_excl_bn": prof.without_norm().memory_mbit, "flops_m": prof.flops_m}


def paper_size_profile(genotype: Genotype, *, dataset: str = data.DEFAULT_DATASET, size: str = "small",
                       precision: str = "binary") -> dict[str, Any]:
    """The same genotype at the paper's size, analytic (:func:`cpnas.efficiency.profile_genotype`).

    CIFAR-10 at C = 56 / 72 / 112, or ImageNet at C = 102, 224×224, 1000 classes:
    params, memory (Mbit, with and without BN) and FLOPs (M).
    """
    from cpnas.config import get_config
    from cpnas.efficiency import profile_genotype

    prof = profile_genotype(genotype, dataset=dataset, size=size, precision=precision, config=get_config("paper"))
    return {"params_m": prof.params_m, "memory_mbit": prof.memory_mbit,
            "memory_mbit_excl_bn": prof.without_norm().memory_mbit, "flops_m": prof.flops_m,
            "channels": prof.meta["channels"], "layers": prof.meta["layers"]}




def _loaders(cfg: Config, dataset: str, data_root: Path | None, seed: int, device: torch.device,
             channels_last: bool = True):
    tcfg = train_config(cfg, dataset)
    full = data.load_dataset(cfg, dataset, "train", data_root, seed=seed)
    test = data.load_dataset(cfg, dataset, "test", data_root, seed=seed)
    idx_train, idx_val = data.train_val_split(len(full), tcfg.train_fraction, tcfg.val_fraction, seed,
                                           labels=full.labels)
    train = data.subset(full, idx_train)
    # the test subset does not depend on the seed: every run of a scale is measured on the same images
    test = data.subset(test, data.fraction_indices(len(test), tcfg.test_fraction, 0, labels=test.labels))
    train_loader = data.TensorLoader(train, tcfg.batch_size, shuffle=True, augment=True, cutout=tcfg.cutout,
                                  seed=seed, device=device, channels_last=channels_last)
    test_loader = data.TensorLoader(test, tcfg.batch_size, shuffle=False, augment=False, device=device,
                                 channels_last=channels_last)
    val_loader = None
    if idx_val is not None:
        val_loader = data.TensorLoader(data.subset(full, idx_val), tcfg.batch_size, shuffle=False, augment=False,
                                    device=device, channels_last=channels_last)
    return train, test, train_loader, test_loader, val_loader


def train_genotype(genotype: Genotype, cfg: Config, *, out: str | os.PathLike, size: str = "small",
                   dataset: str = data.DEFAULT_DATASET, data_root: str | os.PathLike | None = None, seed: int = 0,
                   loss: str = "cp", precision: str = "binary", resume: bool = False, device: str = "auto",
                   genotype_path: str | os.PathLike | None = None, extra: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
    """Train ``genotype`` from scratch with the recipe of §3.1 and write ``metrics.json`` to ``out``.

    Returns the metrics. ``resume=True`` continues from ``out/checkpoint.pt``; on a
    finished run (``metrics.json`` present) it is a no-op returning the stored
    metrics. ``extra`` is stored in the metrics as is (e.g. the search's cost).
    """
    out = Path(out)
    if loss not in LOSSES:
        raise CpnasError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
    prec = get_precision(precision)
    if loss == "cp" and not prec.binary:
        raise CpnasError("the CP loss is for 1-bit networks; use --loss ce with --precision real")
    channels_of(train_config(cfg, dataset), size)  # validate the size before loading data
    check_fits_in_memory(f"the {size} {dataset} network (C = {channels_of(train_config(cfg, dataset), size)})",
                         lambda: build_network(genotype, cfg, dataset=dataset, size=size, precision=precision),
                         copies=3, device=device)  # weight, gradient, ≥ 1 optimizer moment (SGD momentum, Adam)
    if (out / METRICS).exists():
        if resume:
            stored = read_json(out / METRICS)
            key = run_key(genotype, cfg, dataset=dataset, size=size, seed=seed, loss=loss, precision=prec.name)
            if stored.get("run") is not None and stored["run"] != key:
                raise CpnasError(f"{out} holds a finished training run of another genotype or configuration "
                                 f"({config_difference(stored['run'], key)}); choose another --out")
            log.info("%s is finished; nothing to resume", out)
            return stored
        raise CpnasError(f"{out} already holds a finished training run; pass --resume to keep it (a no-op) "
                         f"or choose another --out")
    if not resume and (out / CHECKPOINT).exists():
        raise CpnasError(f"{out} already holds a training run; pass --resume to continue it or choose another --out")
    run = run_key(genotype, cfg, dataset=dataset, size=size, seed=seed, loss=loss, precision=prec.name)
    check_resume_identity(out, run, resume=resume)  # before any data loads and before anything is written
    dev = resolve_device(device)
    data_root = Path(data_root) if data_root is not None else None
    tcfg = train_config(cfg, dataset)
    train, test, train_loader, test_loader, val_loader = _loaders(cfg, dataset, data_root, seed, dev)
    remove_orphaned_temps(out)  # only once the arguments and the data are known good
    with torch.random.fork_rng(devices=[]):  # a throw-away twin to time; the run's RNG stream is untouched
        probe = build_network(genotype, cfg, dataset=dataset, size=size, precision=precision,
                              num_classes=train.num_classes)
    fmt = memory_format_for(probe, dev, input_shape=(tcfg.batch_size, *train.images.shape[1:]))
    del probe
    for loader in (train_loader, test_loader, val_loader):
        if loader is not None:
            loader.channels_last = fmt == torch.channels_last

    parent = None
    if loss == "cp" and cfg.loss.kernel_source == "parent":
        parent = _trained_parent(genotype, cfg, out / PARENT_DIR, size=size, dataset=dataset,
                                 data_root=data_root, seed=seed, device=device, num_classes=train.num_classes,
                                 genotype_path=genotype_path)
    torch.manual_seed(seed)
    model = build_network(genotype, cfg, dataset=dataset, size=size, precision=precision,
                          num_classes=train.num_classes).to(dev, memory_format=fmt)
    from cpnas import accel
    loss_fn = make_loss(loss, model, num_classes=train.num_classes, config=cfg.loss, parent=parent,
                        label_smoothing=tcfg.label_smoothing, aux_weight=tcfg.auxiliary_weight)
    write_json(out / CONFIG, {**run, "genotype_path": portable(genotype_path),
                                     "data_root": portable(data_root),
                                     "dataset_description": train.description})
    start = time.perf_counter()
    result: FitResult = fit(model, train_loader, test_loader, tcfg, loss_fn, device=dev, out=out, resume=resume,
                            topk=(1, 5), run_info=run, desc=f"train {(extra or {}).get('name', out.name)}")
    metrics = _metrics(result, genotype, cfg, dataset=dataset, size=size, precision=prec.name, loss=loss,
                       seed=seed, device=dev, description=train.description, n_train=len(train),
                       n_test=len(test), num_classes=train.num_classes, genotype_path=genotype_path,
                       session_s=time.perf_counter() - start)
    if val_loader is not None:  # the held-out validation split (train.val_fraction): what recipe sweeps select on
        from cpnas.train import evaluate

        val = evaluate(model, val_loader, device=dev, modules=[model], topk=(1,), desc="val")
        metrics.update({"val_top1": 100.0 * val["top1"], "val_images": val["n"]})
    from cpnas import dispatch

    metrics["acceleration"] = accel.describe()
    metrics["kernel_forms"] = {"memory_format": "channels_last" if fmt == torch.channels_last else "contiguous",
                               **{op: forms for op, forms in dispatch.summary().items() if op != "memory_format"}}
    metrics["kernel_forms_record"] = dispatch.record()  # CPNAS_FORMS=@metrics.json takes these forms
    from cpnas.paths import git_commit

    metrics["git_commit"] = git_commit()
    metrics["train_seconds_per_thread"] = result.wall_clock_s * torch.get_num_threads()
    metrics["threads"] = torch.get_num_threads()
    if extra:
        metrics.update(extra)
    write_json(out / METRICS, metrics)
    return metrics


def check_resume_identity(out: Path, key: dict[str, Any], *, resume: bool) -> None:
    """Refuse, before anything is read or written, a run folder that holds another run than ``key``'s.

    * a search's folder (its ``config.json`` has no genotype; its checkpoint no ``run_info``);
    * with ``resume``, a checkpoint of another genotype, size, seed, scale, loss or dataset.
    """
    from cpnas.driver import EpochDriver

    config = out / CONFIG
    if config.is_file():
        stored = read_json(config)
        if not isinstance(stored, dict) or "genotype" not in stored:
            raise CpnasError(f"{out} holds another kind of run than a training (its config.json is not a "
                             f"training run's: a search's?); choose another --out")
    if not resume:
        return
    state = EpochDriver(out).read_checkpoint()
    if state is None:
        return
    from cpnas.driver import restore_forms
    if "run_info" not in state:
        raise CpnasError(f"{out / CHECKPOINT} is not a training checkpoint (a search's?); resume it with "
                         f"'cpnas search', or choose another --out")
    if state["run_info"] != key:
        raise CpnasError(f"{out / CHECKPOINT} was written by another run ({config_difference(state['run_info'], key)}); "
                         f"resume with the same options or choose another --out")
    restore_forms(state)  # before the first kernel of this process: the forms the run started with


def check_fits_in_memory(what: str, build, *, copies: int, device: str = "auto") -> None:
    """Refuse a network whose weights alone cannot fit in the device's memory, before allocating it.

    ``build()`` constructs the network(s) (called on the ``meta`` device: no memory is taken);
    ``copies`` counts the tensors per weight a step keeps (weight, gradient, optimizer moments).
    The estimate is a lower bound (activations come on top), so a refusal is certain.
    """
    with torch.device("meta"):
        nets = build()
    nets = nets if isinstance(nets, (list, tuple)) else [nets]
    need = copies * sum(p.numel() * p.element_size() for n in nets for p in n.parameters())
    dev = resolve_device(device)
    if dev.type == "cuda":
        have = torch.cuda.get_device_properties(dev).total_memory
    else:
        import os

        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > have:
        raise CpnasError(f"{what} cannot fit in memory: its weights, their gradients and optimizer state alone "
                         f"need an estimated {need / 2**30:,.1f} GiB (activations not counted), and this "
                         f"{dev.type} has {have / 2**30:,.1f} GiB; choose smaller sizes (cpnas config lists them)")


def _metrics(result: FitResult, genotype: Genotype, cfg: Config, *, dataset: str, size: str, precision: str,
             loss: str, seed: int, device: torch.device, description: str, n_train: int, n_test: int,
             num_classes: int, genotype_path: Any, session_s: float) -> dict[str, Any]:
    from cpnas.paths import run_info

    tcfg = train_config(cfg, dataset)
    top1 = result.test["top1"]
    metrics: dict[str, Any] = {
        "test_error": 100.0 * (1.0 - top1), "top1": 100.0 * top1,
        "top5": 100.0 * result.test["top5"] if num_classes > 5 else None,
        **profile_network(genotype, cfg, dataset=dataset, size=size, precision=precision, num_classes=num_classes),
        "paper_size": paper_size_profile(genotype, dataset=dataset, size=size, precision=precision),
        "weight_bits": 32 if precision == "real" else 1,
        "activation_bits": 32 if precision == "real" else 1,
        "epochs": tcfg.epochs, "wall_clock_s": result.wall_clock_s, "cpu_s": result.cpu_s,
        "device": run_info(cfg.scale, device=device.type)["device"],
        "scale": cfg.scale, "budget": budget_name(cfg.scale, dataclasses.asdict(tcfg), dataset),
        "dataset": dataset, "dataset_description": description,
        "train_images": n_train, "test_images": n_test, "num_classes": num_classes,
        "size": size, "channels": channels_of(tcfg, size), "layers": tcfg.layers, "image_size": tcfg.image_size,
        "precision": precision, "loss": loss, "kernel_source": cfg.loss.kernel_source if loss == "cp" else None,
        "seed": seed, "genotype": genotype.to_dict(), "genotype_path": portable(genotype_path),
        "resumed_from_epoch": result.resumed_from, "last_session_s": session_s,
        "run": run_key(genotype, cfg, dataset=dataset, size=size, seed=seed, loss=loss, precision=precision),
    }
    return metrics


def _trained_parent(genotype: Genotype, cfg: Config, out: Path, *, size: str, dataset: str,
                    data_root: Path | None, seed: int, device: str, num_classes: int,
                    genotype_path: Any) -> nn.Module:
    """The full-precision Parent for ``kernel_source = "parent"``: trained (or loaded) in ``out``, then frozen."""
    log.info("training the full-precision Parent in %s (loss.kernel_source = 'parent')", out)
    train_genotype(genotype, cfg, out=out, size=size, dataset=dataset, data_root=data_root, seed=seed,
                   loss="ce", precision="real", resume=True, device=device, genotype_path=genotype_path)
    parent = trained_network(out, num_classes=num_classes)
    dev = resolve_device(device)
    parent.to(dev, memory_format=memory_format_for(parent, dev)).eval().requires_grad_(False)
    return parent


SUMMARY_KEYS = ("name", "test_error", "top1", "top5", "params_m", "memory_mbit", "flops_m", "epochs",
                "wall_clock_s", "train_images", "test_images", "channels", "layers", "precision", "loss",
                "dataset_description", "scale", "device")


def summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of a run's metrics (for display in the notebooks)."""
    out = {k: metrics.get(k) for k in SUMMARY_KEYS if k in metrics}
    if metrics.get("paper_size"):
        out["params_m at paper size"] = metrics["paper_size"]["params_m"]
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}
def evaluate_run(run: str | os.PathLike, *, data_root: str | os.PathLike | None = None,
                 device: str = "auto") -> dict[str, Any]:
    """Rebuild a trained network from its run folder and measure it again (``cpnas eval``).

    ``run`` is a training run folder (``config.json`` + ``checkpoint.pt``) or a
    checkpoint file in such a folder (that file is evaluated, with the folder's ``config.json``). The network, its recipe and its test split come from the run's
    own ``config.json`` (its run key), the weights from the checkpoint; the result is
    test top-1/top-5 on the same test images as the run, and params, Mbit and FLOPs
    at the trained size (:mod:`cpnas.efficiency`). When the run has a ``metrics.json``,
    its stored top-1 is returned beside the new one (``stored_top1``).
    """
    from cpnas.train import evaluate

    path = Path(run)
    folder = path.parent if path.is_file() else path
    if not folder.is_dir():
        raise CpnasError(f"{run}: no such run folder")
    ckpt = path if path.is_file() else folder / CHECKPOINT  # a named file is the one evaluated
    if not ckpt.is_file():
        raise CpnasError(f"{folder}: no {CHECKPOINT}; only a training run folder with its checkpoint can be "
                         f"evaluated (checkpoints are not committed: train it with 'cpnas train' first)")
    trained = read_run(folder)
    cfg, dataset, size, precision = trained.config, trained.dataset, trained.size, trained.precision
    genotype, stored = trained.genotype, trained.metrics
    load_checkpoint(ckpt)  # a damaged file or one that is not a checkpoint: refused before data loads
    dev = resolve_device(device)
    test = data.load_dataset(cfg, dataset, "test", Path(data_root) if data_root else None,
                          seed=trained.key.get("seed", 0))
    tcfg = train_config(cfg, dataset)
    test = data.subset(test, data.fraction_indices(len(test), tcfg.test_fraction, 0, labels=test.labels))
    model = trained_network(trained, checkpoint=ckpt, num_classes=test.num_classes)
    model.to(dev)
    loader = data.TensorLoader(test, tcfg.batch_size, shuffle=False, augment=False, device=dev)
    res = evaluate(model, loader, device=dev, modules=[model], topk=(1, 5), desc="eval")
    prof = profile_network(genotype, cfg, dataset=dataset, size=size, precision=precision,
                           num_classes=test.num_classes)
    return {"run": portable(folder), "dataset": dataset, "size": size, "precision": precision,
            "test_images": res["n"], "top1": 100.0 * res["top1"], "top5": 100.0 * res["top5"],
            "checkpoint": portable(ckpt), "stored_top1": stored.get("top1") if ckpt == folder / CHECKPOINT else None,
            "params_m": prof["params_m"], "memory_mbit": prof["memory_mbit"], "flops_m": prof["flops_m"]}
