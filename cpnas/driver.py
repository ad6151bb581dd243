"""One checkpointed epoch driver, shared by the search and by training (DESIGN §5).

:func:`cpnas.search.run_search` and :func:`cpnas.train.fit` differ only in what
one epoch does and in what state they own (a strategy; a model, an optimizer and
a loss). Everything else a resumable run needs is written once, here:

* the epoch loop, from the first epoch a checkpoint has not recorded;
* after every epoch: the record's wall-clock, ``history.json``, then an atomic
  ``checkpoint.pt`` (:func:`cpnas.io.save_checkpoint`) holding the caller's state,
  the history, the elapsed time and the CPU **and CUDA** RNG states;
* on resume: the kernel forms the run used (:mod:`cpnas.dispatch`, recorded in every
  checkpoint), the caller's state through its callback (which may refuse a checkpoint of
  another run), then the RNG states, the history and the elapsed time;
* the non-finite guard: a :class:`NonFiniteLossError` raised by an epoch becomes
  one message naming the epoch and the last good checkpoint, which stays untouched.

Since data order and augmentation are functions of (seed, epoch) only
(:class:`cpnas.data.TensorLoader`), and the RNG states are restored, a run killed
and resumed ends exactly like an uninterrupted one (wall-clock aside). In a
data-parallel run (:mod:`cpnas.distributed`) rank 0 writes the checkpoint and every
rank waits for it; the checkpoint holds nothing rank-specific (the RNG states are
equal on every rank), so a run resumes under another number of processes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from cpnas import dispatch, distributed
from cpnas.errors import CpnasError
from cpnas.io import load_checkpoint, save_checkpoint, write_json
from cpnas.progress import progress
from cpnas.runs.files import CHECKPOINT, HISTORY

log = logging.getLogger(__name__)

DRIVER_KEYS = ("epoch", "history", "elapsed", "cpu_elapsed", "torch_rng", "cuda_rng", "kernel_forms")
"""The checkpoint entries the driver owns; the caller's state sits beside them under its own keys."""


class NonFiniteLossError(CpnasError):
    """The loss became NaN or infinite: the run stops, the last checkpoint is kept."""


@dataclass
class EpochsResult:
    """What :meth:`EpochDriver.run` returns."""

    history: list[dict[str, Any]]
    elapsed: float
    resumed_from: int | None = None
    cpu_s: float | None = None
    """Seconds of CPU the run's process(es) used over every epoch (``time.process_time``: all its threads),
    resumed sessions included; ``None`` when resumed from a checkpoint that did not record it. Unlike the
    wall-clock, it does not count time the run waited for a busy core."""


def rng_state() -> dict[str, Any]:
    """The CPU RNG state, and every CUDA device's when CUDA has been used in this process."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    return {"torch_rng": torch.get_rng_state(), "cuda_rng": cuda}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved (CUDA states for the devices present, if CUDA is available)."""
    torch.set_rng_state(state["torch_rng"].cpu())
    cuda = state.get("cuda_rng")
    if cuda is not None and torch.cuda.is_available():
        for device, s in enumerate(list(cuda)[:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s.cpu(), device)


def restore_forms(state: dict[str, Any] | None) -> None:
    """Take the kernel forms a checkpoint recorded (:func:`cpnas.dispatch.restore`), so a resumed run computes
    with the forms it started with, whatever this process's cache or timing would choose."""
    if state is not None and state.get("kernel_forms") is not None:
        n = dispatch.restore(state["kernel_forms"])
        log.debug("%d kernel-form choices restored from the checkpoint", n)


class EpochDriver:
    """Runs epochs ``start … total − 1`` of one run, checkpointing in ``out`` after each.

    ``out = None`` runs without checkpoints (nothing is written, nothing resumed).
    ``map_location`` is where a checkpoint's tensors are loaded (the run's device).
    """

    def __init__(self, out: str | Path | None, *, map_location: Any = None) -> None:
        self.out = Path(out) if out is not None else None
        self.checkpoint_path = self.out / CHECKPOINT if self.out is not None else None
        self.map_location = map_location
        self._state: dict[str, Any] | None = None

    def read_checkpoint(self) -> dict[str, Any] | None:
        """The checkpoint in ``out`` (read once), or None: lets a caller check a run's identity before loading data."""
        if self._state is None and self.checkpoint_path is not None and self.checkpoint_path.exists():
            state = load_checkpoint(self.checkpoint_path, map_location=self.map_location)
            optional = ("cuda_rng", "kernel_forms", "cpu_elapsed")
            missing = [k for k in DRIVER_KEYS if k not in optional and k not in state]
            if missing:
                raise CpnasError(f"{self.checkpoint_path} is not a checkpoint this version can resume (no "
                                 f"{', '.join(missing)}); start the run again into a new --out")
            self._state = state
        return self._state

    def run(self, run_epoch: Callable[[int], dict[str, Any]], total_epochs: int, *,
            state_dict: Callable[[], dict[str, Any]], load_state_dict: Callable[[dict[str, Any]], None],
            resume: bool = False, wall_clock_key: str = "wall_clock_s", seconds_key: str | None = None,
            progress_desc: str | None = None) -> EpochsResult:
        """Run (or, with ``resume``, continue) the epochs; returns the whole history.

        ``run_epoch(e)`` trains epoch ``e`` and returns its history record; the
        driver adds ``record[seconds_key]`` (this epoch's seconds, if a key is given)
        and ``record[wall_clock_key]`` (the run's elapsed seconds, resumed sessions
        included). ``state_dict()`` gives the caller's part of the checkpoint (its
        keys must not be :data:`DRIVER_KEYS`); ``load_state_dict(checkpoint)``
        restores it, or raises :class:`CpnasError` if the checkpoint belongs to
        another run. ``progress_desc`` shows a bar over the epochs.
        """
        history: list[dict[str, Any]] = []
        elapsed, start, resumed_from = 0.0, 0, None
        cpu: float | None = 0.0
        state = self.read_checkpoint() if resume else None
        if state is not None:
            restore_forms(state)  # the kernel forms the run used (callers restore them earlier, before any kernel)
            load_state_dict(state)
            set_rng_state(state)
            history, elapsed = list(state["history"]), float(state["elapsed"])
            cpu = float(state["cpu_elapsed"]) if state.get("cpu_elapsed") is not None else None
            start = resumed_from = int(state["epoch"]) + 1
            log.info("resuming %s at epoch %d/%d", self.out, start + 1, total_epochs)
        elif resume and self.out is not None:
            log.info("no checkpoint in %s: starting afresh", self.out)
        epochs: Any = range(start, total_epochs)
        if progress_desc is not None:
            epochs = progress(epochs, desc=progress_desc, total=total_epochs - start, leave=True, unit="epoch")
        for epoch in epochs:
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                record = run_epoch(epoch)
            except NonFiniteLossError as exc:
                kept = (f"the checkpoint of epoch {epoch} in {self.checkpoint_path} is kept"
                        if self.checkpoint_path is not None and self.checkpoint_path.exists()
                        else "no checkpoint was written yet")
                raise NonFiniteLossError(f"epoch {epoch + 1}/{total_epochs}: {exc} ({kept})") from None
            seconds = time.perf_counter() - t0
            elapsed += seconds
            if cpu is not None:
                cpu += time.process_time() - c0
            if seconds_key is not None:
                record[seconds_key] = seconds
            record[wall_clock_key] = elapsed
            history.append(record)
            if self.out is not None:
                own = state_dict()
                clash = set(own) & set(DRIVER_KEYS)
                if clash:
                    raise ValueError(f"the caller's checkpoint state uses the driver's keys {sorted(clash)}")
                write_json(self.out / HISTORY, history)
                save_checkpoint(self.checkpoint_path, {**own, "epoch": epoch, "history": history,
                                                       "elapsed": elapsed, "cpu_elapsed": cpu, **rng_state(),
                                                       "kernel_forms": dispatch.record()})
                distributed.barrier()  # data-parallel: rank 0's checkpoint is on disk before any rank goes on
        return EpochsResult(history=history, elapsed=elapsed, resumed_from=resumed_from, cpu_s=cpu)
