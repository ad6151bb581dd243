"""The one training loop: ``train_one_epoch`` / ``evaluate`` / ``fit``.

Written once (as torchvision's classification references do) and reused by the
search (Child and Parent paths, PC-DARTS weight steps), CIFAR training and
ImageNet training. Models are called through a ``forward`` callable, so a
sampled supernet path (``lambda x: net(x, path)``) and an evaluation network
returning ``(logits, logits_aux)`` go through the same code.

A non-finite loss stops the run with :class:`NonFiniteLossError` (a
:class:`~cpnas.errors.CpnasError`); the last good checkpoint is left untouched.
Epochs, checkpoints, resume and RNG state are :mod:`cpnas.driver`'s, shared with the search.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable

import torch
from torch import nn

from cpnas import accel, distributed
from cpnas.driver import CHECKPOINT, HISTORY, EpochDriver, NonFiniteLossError
from cpnas.errors import CpnasError
from cpnas.progress import progress

if TYPE_CHECKING:
    from cpnas.config import TrainConfig

log = logging.getLogger(__name__)

Forward = Callable[[torch.Tensor], Any]
LossFn = Callable[[Any, torch.Tensor], torch.Tensor]


def logits_of(output: Any) -> torch.Tensor:
    """The main logits of a model output (evaluation nets return ``(logits, logits_aux)``)."""
    return output[0] if isinstance(output, (tuple, list)) else output


def cross_entropy_loss(label_smoothing: float = 0.0, aux_weight: float = 0.0) -> LossFn:
    """Cross-entropy on the main logits, plus ``aux_weight`` × CE on the auxiliary logits (DARTS)."""
    ce = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def loss(output: Any, target: torch.Tensor) -> torch.Tensor:
        if isinstance(output, (tuple, list)):
            logits, aux = output
            value = ce(logits, target)
            if aux is not None and aux_weight > 0:
                value = value + aux_weight * ce(aux, target)
            return value
        return ce(output, target)

    return loss


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else CPU; anything else is passed to torch.

    In a data-parallel run (:mod:`cpnas.distributed`) ``auto`` and ``cuda`` mean this rank's GPU,
    ``cuda:LOCAL_RANK``.
    """
    if distributed.is_initialized():
        return distributed.device_for(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise CpnasError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CpnasError(f"device {name!r} requested but CUDA is not available; use --device cpu")
    return device


@dataclass
class EpochStats:
    loss: float
    acc: float
    n: int
    seconds: float

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}loss": self.loss, f"{prefix}acc": self.acc, f"{prefix}n": self.n,
                f"{prefix}seconds": self.seconds}


def _check_finite(loss: torch.Tensor, where: str) -> None:
    if not torch.isfinite(loss):
        raise NonFiniteLossError(
            f"non-finite loss ({loss.item()}) during {where}; training stopped and the last "
            f"good checkpoint is kept. Check the data, or start again into a new --out with a lower "
            f"learning rate (--set …lr=…; --resume only continues a run with the options it began with).")


def train_one_epoch(forward: Forward, params: Iterable[nn.Parameter] | None, loader: Iterable,
                    optimizer: torch.optim.Optimizer, loss_fn: LossFn, *, device: torch.device,
                    grad_clip: float | None = None, modules: Iterable[nn.Module] = (),
                    before_step: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
                    desc: str = "train") -> EpochStats:
    """One pass over ``loader``: forward, loss, backward, clip, step.

    ``modules`` are put in train mode first. ``params`` are the ones clipped to
    ``grad_clip`` (global norm; DARTS/§3.1 "gradient clipping at 5").
    ``before_step(i, x, y)`` runs before each weight step (PC-DARTS updates its
    architecture parameters there). ``forward`` may be a DistributedDataParallel
    module (:func:`cpnas.distributed.wrap`), which averages the gradients over ranks;
    over a sharded loader the returned loss and accuracy are those of all ranks' samples.
    """
    for m in modules:
        m.train()
    params = list(params) if params is not None else None
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    n = 0
    start = time.perf_counter()
    bar = progress(loader, desc=desc, total=_len(loader))
    for i, (x, y) in enumerate(bar):
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        if before_step is not None:
            before_step(i, x, y)
        optimizer.zero_grad(set_to_none=True)
        with accel.autocast(device):  # bf16 on CUDA with --amp bf16 (cpnas.accel); a no-op otherwise
            output = forward(x)
            loss = loss_fn(output, y)
        _check_finite(loss, desc)
        loss.backward()
        if grad_clip and params is not None:
            nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()
        b = y.shape[0]
        total_loss += loss.detach() * b
        correct += (logits_of(output).detach().argmax(1) == y).sum()
        n += b
    loss_sum, hits = total_loss.item(), correct.item()
    if distributed.is_sharded(loader):
        loss_sum, hits, n = distributed.all_reduce_sum([loss_sum, hits, n])
        n = int(n)
    return EpochStats(loss=loss_sum / max(n, 1), acc=hits / max(n, 1), n=n, seconds=time.perf_counter() - start)


@torch.inference_mode()
def evaluate(forward: Forward, loader: Iterable, *, device: torch.device, modules: Iterable[nn.Module] = (),
             train_mode_bn: bool = False, topk: tuple[int, ...] = (1, 5),
             loss_fn: LossFn | None = None, desc: str = "eval") -> dict[str, float]:
    """Accuracy (top-k) and loss over ``loader``.

    ``train_mode_bn=True`` normalizes with batch statistics (used for sampled paths
    of the weight-sharing supernet, whose BN running statistics mix all paths).
    Over a loader sharded between data-parallel ranks (:mod:`cpnas.distributed`) the
    correct counts, loss sums and sample counts are summed over ranks, so every rank
    returns the accuracy of the whole set.
    Runs under ``torch.inference_mode`` (no autograd bookkeeping at all, less than
    ``torch.no_grad`` keeps).
    """
    for m in modules:
        m.train(train_mode_bn)
    correct = {k: 0 for k in topk}
    total_loss, n = 0.0, 0
    start = time.perf_counter()
    for x, y in progress(loader, desc=desc, total=_len(loader)):
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        with accel.autocast(device):
            output = forward(x)
        logits = logits_of(output)
        if loss_fn is not None:
            total_loss += loss_fn(logits, y).item() * y.shape[0]
        maxk = min(max(topk), logits.shape[1])
        pred = logits.topk(maxk, dim=1).indices
        hit = pred == y[:, None]
        for k in topk:
            correct[k] += hit[:, : min(k, maxk)].any(dim=1).sum().item()
        n += y.shape[0]
    if distributed.is_sharded(loader):
        *hits, total_loss, n = distributed.all_reduce_sum([*(correct[k] for k in topk), total_loss, n])
        correct = {k: int(h) for k, h in zip(topk, hits)}
        n = int(n)
    out = {f"top{k}": correct[k] / max(n, 1) for k in topk}
    out["acc"] = out[f"top{topk[0]}"]
    out["n"] = n
    out["seconds"] = time.perf_counter() - start
    if loss_fn is not None:
        out["loss"] = total_loss / max(n, 1)
    return out


@torch.no_grad()
def recalibrate_bn(forward: Forward, modules: Iterable[nn.Module], batches: Iterable, *,
                   device: torch.device) -> int:
    """Re-estimate every BatchNorm's running statistics of ``modules`` on ``batches``.

    The statistics are reset and then set to the plain average over the batches
    (``momentum = None``), with ``forward`` run in train mode without gradients;
    the modules are left in train mode. Single Path One-Shot (Guo et al., ECCV 2020,
    §3.3) does this before scoring a sampled path of a weight-sharing supernet,
    whose running statistics otherwise mix every path trained so far. Afterwards an
    eval-mode score treats every image alone, so it does not depend on how the
    scored images are ordered or batched. Returns the number of batches used.
    """
    modules = list(modules)
    bns = [m for mod in modules for m in mod.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
           and m.track_running_stats]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    for mod in modules:
        mod.train()
    used = 0
    try:
        for x, _ in batches:
            forward(x.to(device, non_blocking=True))
            used += 1
    finally:
        for m, momentum in zip(bns, momenta):
            m.momentum = momentum
    return used


def cosine_lr(base_lr: float, lr_min: float, epoch: int, total_epochs: int) -> float:
    """Cosine annealing without restart (SGDR, Loshchilov & Hutter 2017), as §3.1: lr_min at the end."""
    if total_epochs <= 0:
        return base_lr
    return lr_min + 0.5 * (base_lr - lr_min) * (1 + math.cos(math.pi * epoch / total_epochs))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def sgd(params: Iterable[nn.Parameter], lr: float, momentum: float, weight_decay: float) -> torch.optim.SGD:
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


OPTIMIZERS = ("sgd", "adam")


def param_groups(model: nn.Module, weight_decay: float, binary_weight_decay: float) -> list[dict[str, Any]]:
    """Two parameter groups: the latent weights of the 1-bit convs, and every other trainable parameter.

    A 1-bit conv followed by BN (or by another sign) is invariant to the scale of
    its latent weights, so weight decay on them only shrinks them towards the sign
    flip threshold; BNN practice (Bi-Real Net, Liu et al. 2018 §4; ReActNet, Liu et
    al. 2020 §4.1; larq's optimization guide) gives them none. The paper (§3.1)
    states one decay for all. Empty groups are dropped.
    """
    from cpnas.binary import BinaryConv2d

    binary = {id(m.weight) for m in model.modules() if isinstance(m, BinaryConv2d)}
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if id(p) in binary], "weight_decay": binary_weight_decay,
               "group": "binary"},
              {"params": [p for p in params if id(p) not in binary], "weight_decay": weight_decay,
               "group": "real"}]
    return [g for g in groups if g["params"]]


def make_optimizer(model: nn.Module, kind: str, *, lr: float, momentum: float, weight_decay: float,
                   binary_weight_decay: float) -> torch.optim.Optimizer:
    """The optimizer of a recipe (:mod:`cpnas.config`): ``sgd`` (§3.1: momentum, weight decay) or ``adam``.

    ``adam`` is Adam (Kingma & Ba 2015) with L2 weight decay per group, the
    optimizer of the BNN recipes the ``cpu`` preset follows (Bi-Real Net,
    ReActNet, Real-to-Binary: Martinez et al. 2020); momentum is unused there.
    """
    groups = param_groups(model, weight_decay, binary_weight_decay)
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum)
    if kind == "adam":
        return torch.optim.Adam(groups, lr=lr)
    raise CpnasError(f"unknown optimizer {kind!r}; choose one of {', '.join(OPTIMIZERS)}")


def recipe_optimizer(model: nn.Module, rcfg: Any, lr: float | None = None) -> torch.optim.Optimizer:
    """:func:`make_optimizer` with the fields of a recipe section (``cfg.search`` or a TrainConfig)."""
    return make_optimizer(model, rcfg.optimizer, lr=rcfg.lr if lr is None else lr, momentum=rcfg.momentum,
                          weight_decay=rcfg.weight_decay, binary_weight_decay=rcfg.binary_weight_decay)


def _example_batch(loader: Any, device: torch.device) -> torch.Tensor | None:
    """A tensor shaped and laid out as a full batch of ``loader`` (values unset), where the loader says."""
    from cpnas.networks import loader_input_shape

    shape = loader_input_shape(loader)
    if shape is None:
        return None
    channels_last = getattr(loader, "channels_last", False) and len(shape) == 4
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return torch.empty(shape, device=device).contiguous(memory_format=fmt)


def _len(loader: Any) -> int | None:
    try:
        return len(loader)
    except TypeError:
        return None


# --------------------------------------------------------------------------- fit: the one training run

@dataclass
class FitResult:
    """What :func:`fit` returns: the per-epoch history and the final test metrics."""

    history: list[dict[str, Any]]
    test: dict[str, float]
    epochs: int
    wall_clock_s: float
    resumed_from: int | None = None
    cpu_s: float | None = None


def fit(model: nn.Module, train_loader: Any, test_loader: Any, tcfg: "TrainConfig", loss_fn: LossFn, *,
        device: torch.device, out: Any = None, resume: bool = False, topk: tuple[int, ...] = (1, 5),
        run_info: dict[str, Any] | None = None, desc: str = "fit") -> FitResult:
    """Train ``model`` for ``tcfg.epochs`` epochs and measure it on ``test_loader`` (§3.1).

    The recipe of §3.1 (CIFAR and ImageNet alike), every number from ``tcfg`` (a
    :class:`~cpnas.config.TrainConfig`): SGD with momentum and weight decay; the
    learning rate of epoch *e* is ``cosine_lr(lr, lr_min, e, epochs)``, set at the
    start of every epoch (a pure function of *e*, so a resumed run uses the same
    rates); gradient clipping at ``grad_clip``; drop-path probability ramped
    linearly to ``drop_path`` over the run (DARTS); cutout, augmentation, label
    smoothing and the auxiliary tower's weight live in the loader and ``loss_fn``.

    After every epoch (when ``out`` is given) ``history.json`` and an atomic
    ``checkpoint.pt`` (model, optimizer, loss state such as the CP loss's class
    means, RNG, history) are written; ``resume=True`` continues from that
    checkpoint, and since the data order is a function of (seed, epoch) only, the
    result equals an uninterrupted run's. The test set is measured every
    ``tcfg.eval_every`` epochs and after the last one. A non-finite loss raises
    :class:`NonFiniteLossError` naming the last good checkpoint, which stays on disk.

    Data-parallel (:mod:`cpnas.distributed`): the loaders are sharded between the ranks
    (the per-rank batch is ``batch_size / N``, so the global batch is the configured one),
    the model trains inside DistributedDataParallel, and the checkpoint holds the
    unwrapped model, so it resumes under any number of processes.

    Compiled (:func:`cpnas.accel.compile_model`, ``--compile``; one process only), the training
    forward runs through ``torch.compile`` sharing ``model``'s parameters; evaluation and the
    checkpoint use ``model`` itself.
    """
    driver = EpochDriver(out, map_location=device)
    train_loader = distributed.shard_loader(train_loader)
    test_loader = distributed.shard_loader(test_loader, even=False)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = recipe_optimizer(model, tcfg)
    net = distributed.wrap(model)  # the model itself in one process
    if not distributed.is_initialized():  # compiled (cpnas.accel, --compile) for the training forward only
        net = accel.compile_model(model, example=_example_batch(train_loader, device),
                                  steps=tcfg.epochs * (_len(train_loader) or 0) or None)
    per_step = getattr(tcfg, "lr_schedule", "cosine_epoch") == "cosine_step"
    run_info = dict(run_info or {})
    every = max(1, int(getattr(tcfg, "eval_every", 1)))

    def state_dict() -> dict[str, Any]:
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "loss": loss_fn.state_dict() if hasattr(loss_fn, "state_dict") else None, "run_info": run_info}

    def load_state_dict(state: dict[str, Any]) -> None:
        if run_info and state.get("run_info") != run_info:
            diff = config_difference(state.get("run_info"), run_info)
            raise CpnasError(f"{driver.checkpoint_path} was written by another run ({diff}); resume with the same "
                             f"options or choose another --out")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if state.get("loss") is not None and hasattr(loss_fn, "load_state_dict"):
            loss_fn.load_state_dict(state["loss"])

    def run_epoch(epoch: int) -> dict[str, Any]:
        lr = cosine_lr(tcfg.lr, tcfg.lr_min, epoch, tcfg.epochs)
        set_lr(optimizer, lr)
        if hasattr(model, "drop_path_prob"):
            model.drop_path_prob = tcfg.drop_path * epoch / tcfg.epochs
        if hasattr(train_loader, "set_epoch"):
            train_loader.set_epoch(epoch)
        before_step = None
        if per_step:  # cosine over steps: a pure function of (epoch, step), so a resumed run agrees
            steps = max(1, _len(train_loader) or 1)

            def before_step(i: int, x: torch.Tensor, y: torch.Tensor) -> None:
                set_lr(optimizer, cosine_lr(tcfg.lr, tcfg.lr_min, epoch * steps + i, tcfg.epochs * steps))
        stats = train_one_epoch(net, params, train_loader, optimizer, loss_fn, device=device,
                                grad_clip=tcfg.grad_clip, modules=[model], before_step=before_step,
                                desc=f"epoch {epoch + 1}")
        record: dict[str, Any] = {"epoch": epoch + 1, "lr": lr, "train_loss": stats.loss, "train_acc": stats.acc}
        if distributed.world_size() > 1:
            record["world_size"] = distributed.world_size()
        if hasattr(model, "drop_path_prob"):
            record["drop_path_prob"] = model.drop_path_prob
        if hasattr(loss_fn, "pop_stats"):
            record.update(loss_fn.pop_stats())
        if epoch + 1 == tcfg.epochs or (epoch + 1) % every == 0:
            test = evaluate(model, test_loader, device=device, modules=[model], topk=topk, desc="test")
            record["test_acc"] = test["acc"]
            record.update({f"test_top{k}": test[f"top{k}"] for k in topk})
            record["test"] = test
        log.info("epoch %d/%d lr %.4g train loss %.4f acc %.4f%s", epoch + 1, tcfg.epochs, lr, stats.loss,
                 stats.acc, f" test acc {record['test_acc']:.4f}" if "test_acc" in record else "")
        return record

    done = driver.run(run_epoch, tcfg.epochs, state_dict=state_dict, load_state_dict=load_state_dict,
                      resume=resume, wall_clock_key="wall_clock_s", seconds_key="seconds", progress_desc=desc)
    history = done.history
    test: dict[str, float] = dict(history[-1]["test"]) if history and "test" in history[-1] else {}
    if not test:  # zero epochs, or a resumed run whose last record had no test entry
        test = evaluate(model, test_loader, device=device, modules=[model], topk=topk, desc="test")
    return FitResult(history=history, test=test, epochs=tcfg.epochs, wall_clock_s=done.elapsed,
                     resumed_from=done.resumed_from, cpu_s=done.cpu_s)


def config_difference(old: Any, new: Any, limit: int = 3) -> str:
    """The first ``limit`` leaves where two run descriptions differ, as ``key: old vs new``."""
    def leaves(d: Any, prefix: str = "") -> dict[str, Any]:
        if not isinstance(d, dict):
            return {prefix or "value": d}
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(leaves(v, f"{prefix}.{k}" if prefix else str(k)) if isinstance(v, dict) else
                       {f"{prefix}.{k}" if prefix else str(k): v})
        return out

    if not isinstance(old, dict):
        return "no run description"
    a, b = leaves(old), leaves(new)
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    text = "; ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in keys[:limit])
    return (text + (f"; and {len(keys) - limit} more" if len(keys) > limit else "")) or "same options"
