"""Data-parallel search and training under ``torchrun``: one process per device.

``torchrun --standalone --nproc-per-node N -m cpnas search|train …`` starts N copies of
the command line; each reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT`` (set by torchrun, on one node or several) and joins one process group
(:func:`init`): NCCL on GPUs (rank r on ``cuda:LOCAL_RANK``), gloo on CPUs. Without
torchrun (or with ``WORLD_SIZE=1``) nothing here does anything: every helper answers
for one process at the cost of one ``if``.

What a data-parallel run keeps equal to a one-process run with the same global batch,
and where:

* **the same draws on every rank** — the strategies draw from generators seeded by
  the run seed, never the rank, so every rank samples the same path per draw;
* **disjoint shards of every batch** — the loaders (:class:`cpnas.data.TensorLoader`,
  :class:`cpnas.data.stream.StreamLoader`) split every epoch's (seed, epoch) order
  between ranks as ``DistributedSampler`` does; the per-rank batch is the configured
  batch / N (:func:`per_rank_batch`), so the global batch is the configured one;
* **averaged gradients** — :func:`wrap` puts a network in
  :class:`~torch.nn.parallel.DistributedDataParallel`; PC-DARTS' α and β are not DDP
  parameters and are averaged with :func:`all_reduce_mean` before their Adam step
  (naive DDP DARTS derives a different architecture on every rank: nni#5013);
* **the same scores** — evaluation over a sharded loader sums the correct counts over
  ranks (:func:`all_reduce_sum`), so every rank gets the same A_C, A_P and removes the
  same ops;
* **BatchNorm** — per rank by default (statistics over the per-rank batch);
  ``--sync-bn`` computes them over the global batch (:func:`convert_sync_bn`);
* **one writer** — only rank 0 writes artifacts, logs and checkpoints
  (:func:`cpnas.io.write_with` skips the write elsewhere), shows progress bars, and
  prints; checkpoints hold no rank-specific state, so a run resumes under another N.
"""

from __future__ import annotations

import datetime
import logging
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch
import torch.distributed as dist
from torch import nn

from cpnas.errors import CpnasError

log = logging.getLogger(__name__)

TORCHRUN_ENV: tuple[str, ...] = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
"""The variables torchrun sets in every worker (``torch.distributed.run``)."""

TIMEOUT_ENV = "CPNAS_DIST_TIMEOUT"
"""Seconds a collective may wait for a peer before the group gives up (default 1800, torch's)."""


@dataclass
class _Group:
    """What :func:`init` set up for this process."""

    backend: str
    device: torch.device
    sync_bn: bool


_group: _Group | None = None


# --------------------------------------------------------------------------- who am I


def launched() -> bool:
    """Started by torchrun (or an equivalent launcher) with more than one process."""
    return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_initialized() -> bool:
    return _group is not None and dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Number of processes of the run (1 when not distributed)."""
    return dist.get_world_size() if is_initialized() else 1


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if is_initialized() else 0


def local_rank() -> int:
    """This process's index on its node (torchrun's ``LOCAL_RANK``; 0 when not distributed)."""
    return int(os.environ.get("LOCAL_RANK", "0")) if is_initialized() else 0


def is_main() -> bool:
    """Rank 0: the one process that writes, logs, prints and shows progress bars."""
    return rank() == 0


def sync_bn() -> bool:
    """Whether BatchNorm statistics are computed over the global batch (``--sync-bn``)."""
    return _group is not None and _group.sync_bn


# --------------------------------------------------------------------------- set up, tear down


def device_for(name: str) -> torch.device:
    """The device of this rank for a ``--device`` value: ``auto``/``cuda`` become ``cuda:LOCAL_RANK``.

    An explicit ``cuda:K`` is refused with more than one process on a node (every rank would
    share one GPU); ``cpu`` stays ``cpu``.
    """
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if name == "auto":
        return torch.device(f"cuda:{local}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise CpnasError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise CpnasError(f"device {name!r} requested but CUDA is not available; use --device cpu")
        if device.index is not None and int(os.environ.get("LOCAL_WORLD_SIZE", "1")) > 1:
            raise CpnasError(f"--device {name}: under torchrun every rank uses cuda:LOCAL_RANK; "
                             f"pass --device cuda (or auto)")
        return torch.device(f"cuda:{local if device.index is None else device.index}")
    return device


def init(device: str = "auto", *, sync_bn: bool = False) -> bool:
    """Join the process group torchrun describes; returns whether this run is distributed.

    Not launched by torchrun (or ``WORLD_SIZE=1``): returns False and sets up nothing.
    Otherwise: NCCL when this rank's device is a GPU (and ``torch.cuda.set_device``), gloo
    on CPUs; ``sync_bn`` is remembered for :func:`wrap`. Rendezvous is torch's ``env://``
    (``MASTER_ADDR``/``MASTER_PORT``), so the multi-node form of torchrun needs nothing more.
    """
    global _group
    if not launched():
        if sync_bn:
            log.info("--sync-bn has no effect in a single process")
        return False
    if _group is not None:
        return True
    missing = [v for v in TORCHRUN_ENV if v not in os.environ]
    if missing:
        raise CpnasError(f"distributed launch without {', '.join(missing)}; start the run with torchrun "
                         f"(torchrun --nproc-per-node N -m cpnas …)")
    dev = device_for(device)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    timeout = datetime.timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, "1800")))
    kwargs: dict[str, Any] = {"backend": backend, "timeout": timeout}
    if dev.type == "cuda":
        kwargs["device_id"] = dev
    dist.init_process_group(**kwargs)
    _group = _Group(backend=backend, device=dev, sync_bn=sync_bn)
    log.info("rank %d of %d on %s (%s)", dist.get_rank(), dist.get_world_size(), dev, backend)
    return True


def teardown() -> None:
    """Leave the process group (a no-op when none was joined)."""
    global _group
    if _group is not None and dist.is_initialized():
        dist.destroy_process_group()
    _group = None


@contextmanager
def session(device: str = "auto", *, sync_bn: bool = False) -> Iterator[bool]:
    """``with session(args.device, sync_bn=…) as distributed:`` — :func:`init`, then :func:`teardown`.

    After a peer's failure the group is left as it is (tearing down a broken NCCL group can
    hang); the process is about to exit anyway.
    """
    try:
        yield init(device, sync_bn=sync_bn)
    except BaseException as exc:
        if not peer_failure(exc):
            teardown()
        raise
    teardown()


def peer_failure(exc: BaseException) -> bool:
    """Whether ``exc`` was raised because another rank of a torchrun launch died.

    torch raises its ``DistError`` family (``DistBackendError``, ``DistNetworkError``) or, from
    gloo's transport, a ``RuntimeError`` naming the closed connection. False outside torchrun.
    """
    if not launched():
        return False
    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(
        s in text for s in ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "[Gloo]",
                            "NCCL error", "ProcessGroup"))


def brief(exc: BaseException, limit: int = 160) -> str:
    """The first line of an error, shortened: enough to name what broke, not a traceback."""
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return line if len(line) <= limit else line[:limit - 1] + "…"


# --------------------------------------------------------------------------- collectives


def barrier() -> None:
    """Wait for every rank (a no-op when not distributed)."""
    if is_initialized():
        dist.barrier()


def _as_tensor(values: Sequence[float] | torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    assert _group is not None
    return torch.as_tensor(values, dtype=dtype).to(_group.device)


def all_reduce_sum(values: Sequence[float], dtype: torch.dtype = torch.float64) -> list[float]:
    """Element-wise sums over ranks of a few numbers (counts, loss sums); the values themselves alone."""
    if not is_initialized():
        return [float(v) for v in values]
    t = _as_tensor(values, dtype)
    dist.all_reduce(t)
    return t.cpu().tolist()


def all_reduce_mean(tensors: Sequence[torch.Tensor | None]) -> None:
    """Average every tensor over ranks, in place (gradients of parameters DDP does not own)."""
    if not is_initialized():
        return
    present = [t for t in tensors if t is not None]
    if not present:
        return
    flat = torch.cat([t.reshape(-1) for t in present])
    dist.all_reduce(flat)
    flat /= world_size()
    start = 0
    for t in present:
        t.copy_(flat[start:start + t.numel()].view_as(t))
        start += t.numel()


def all_gather_cat(t: torch.Tensor) -> torch.Tensor:
    """Every rank's ``t`` (equal shapes), concatenated along dim 0 in rank order; ``t`` alone otherwise."""
    if not is_initialized():
        return t
    parts = [torch.empty_like(t) for _ in range(world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (a decision taken once, e.g. a memory format chosen by timing)."""
    if not is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# --------------------------------------------------------------------------- data


def per_rank_batch(batch_size: int, what: str = "batch size") -> int:
    """The per-rank batch of a configured (global) batch: ``batch_size / N``, which must divide evenly."""
    n = world_size()
    if batch_size % n:
        raise CpnasError(f"the {what} {batch_size} does not split evenly between {n} processes; choose a "
                         f"multiple of {n} (--set …batch_size=…) or another --nproc-per-node")
    return batch_size // n


def shard_indices(n: int, *, shard: int | None = None, num_shards: int | None = None,
                  even: bool = True) -> range:
    """Positions of an epoch's order that rank ``shard`` of ``num_shards`` reads: ``shard, shard + N, …``.

    ``even`` (training) gives every rank ``n // N`` positions (the last ``n mod N`` are dropped,
    as ``DistributedSampler(drop_last=True)``), so ranks run the same number of steps; otherwise
    (evaluation) the shards cover all ``n`` positions once and may differ by one.
    """
    shard = rank() if shard is None else shard
    num_shards = world_size() if num_shards is None else num_shards
    stop = (n // num_shards) * num_shards if even else n
    return range(shard, stop, num_shards)


def shard_loader(loader: Any, *, even: bool = True) -> Any:
    """``loader`` split between the ranks (per-rank batch = its batch / N); ``loader`` itself in one process.

    Works on :class:`cpnas.data.TensorLoader` and :class:`cpnas.data.stream.StreamLoader`
    (their ``sharded`` method); an already sharded loader is returned as is.
    """
    n = world_size()
    if n == 1 or getattr(loader, "num_shards", 1) > 1 or loader is None:
        return loader
    return loader.sharded(rank(), n, even=even)


def is_sharded(loader: Any) -> bool:
    """Whether ``loader`` yields only this rank's part of the data (so per-rank totals must be summed)."""
    return is_initialized() and getattr(loader, "num_shards", 1) > 1


# --------------------------------------------------------------------------- models


def wrap(module: nn.Module, *, find_unused_parameters: bool = False) -> nn.Module:
    """``module`` in DistributedDataParallel (BN made global first with ``--sync-bn``); itself in one process.

    Call it on a module whose parameters and memory format are final (DDP checks that every
    rank holds the same shapes and strides, and broadcasts rank 0's values). A weight-sharing
    supernet needs ``find_unused_parameters=True``: every draw trains another sub-path, so
    the set of parameters with a gradient changes from one draw to the next (``static_graph``
    would be wrong; every rank runs the same path, so the unused set agrees across ranks).
    Checkpoints keep saving ``module.state_dict()``, the unwrapped one.
    """
    if not is_initialized():
        return module
    assert _group is not None
    if _group.sync_bn:
        convert_sync_bn(module)
    # a 1×1 conv's weight in channels-last has strides DDP's bucket views do not share: harmless
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    device_ids = [_group.device.index] if _group.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=device_ids,
                                               find_unused_parameters=find_unused_parameters)


class AllReduceBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training-mode statistics are those of the global batch, for CPU ranks.

    ``torch.nn.SyncBatchNorm`` refuses CPU tensors; this is the same computation written with
    two differentiable all-reduces (``torch.distributed.nn.functional.all_reduce``): the sum
    and count give the global mean, then the sum of squared deviations gives the (biased)
    global variance, as a one-process BN over the whole batch computes them. Running
    statistics are updated as ``nn.BatchNorm2d`` does (unbiased variance, ``momentum=None``
    as a cumulative average). In eval mode, or without a process group, it is plain BN.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_initialized() and world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce as differentiable_all_reduce

        c = x.shape[1]
        dims = [0, 2, 3]
        count = x.new_full((1,), x.numel() / c)
        packed = differentiable_all_reduce(torch.cat([x.sum(dims), count]))
        total = packed[-1]
        mean = packed[:-1] / total
        centred = x - mean.view(1, c, 1, 1)
        var = differentiable_all_reduce(centred.square().sum(dims)) / total
        y = centred * torch.rsqrt(var + self.eps).view(1, c, 1, 1)
        if self.affine:
            y = y * self.weight.view(1, c, 1, 1) + self.bias.view(1, c, 1, 1)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                unbiased = var.detach() * (total / (total - 1).clamp(min=1))
                self.running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
                self.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)
        return y


def convert_sync_bn(module: nn.Module) -> nn.Module:
    """Every ``BatchNorm2d`` of ``module`` computing global-batch statistics, in place (same parameters).

    On GPUs torch's :class:`~torch.nn.SyncBatchNorm`; on CPUs :class:`AllReduceBatchNorm2d`.
    State-dict keys do not change, so checkpoints load with or without ``--sync-bn``.
    """
    assert _group is not None
    if _group.device.type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in list(module.named_children()):
        if isinstance(child, nn.BatchNorm2d) and not isinstance(child, AllReduceBatchNorm2d):
            new = AllReduceBatchNorm2d(child.num_features, eps=child.eps, momentum=child.momentum,
                                       affine=child.affine, track_running_stats=child.track_running_stats)
            if child.affine:
                new.weight, new.bias = child.weight, child.bias
            if child.track_running_stats:
                new.running_mean, new.running_var = child.running_mean, child.running_var
                new.num_batches_tracked = child.num_batches_tracked
            new.train(child.training)
            setattr(module, name, new)
        else:
            convert_sync_bn(child)
    return module
