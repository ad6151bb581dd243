"""Exact alternative forms of a kernel, chosen per machine by a short measurement.

A rewrite that is exact (same values up to float summation order) can still be
faster on one CPU and slower on another (the space-to-batch form of a dilated
depthwise conv, :mod:`cpnas.fastconv`, is one: which form wins depends on the
machine's vector units; ``make bench`` prints the ratios). So no
form is fixed in code. At first use of a kernel *key* (op, shapes, dtype, memory
format, whether a backward follows, threads) every form is timed, interleaved,
and the fastest is kept:

* in memory for the process, and
* in ``$CPNAS_CACHE/dispatch/<machine>.json`` (:func:`cache_path`), so the next
  process on the same machine (CPU model, torch version) reuses it without timing.

``$CPNAS_FORMS`` forces forms, for tests and for reproducing a timing:
``CPNAS_FORMS=dilated_conv=plain,memory_format=contiguous``. A forced form is
never measured nor cached. :func:`chosen` lists the forms this process used; run
metadata (``metrics.json``, ``cost.json``) and ``make bench`` record it.

Nothing is measured under a ``TorchDispatchMode`` (e.g. :mod:`torch.utils.flop_counter`,
whose counts the timing would pollute) nor for ``meta`` tensors: there the default
form (the first one) is used unless a choice is already known.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import threading
from pathlib import Path
from typing import Callable, Sequence

import torch

from cpnas.errors import CpnasError
from cpnas.timing import median_times

FORCE_ENV = "CPNAS_FORMS"

FORMS: dict[str, tuple[str, ...]] = {
    "dilated_conv": ("plain", "space_to_batch"),
    "memory_format": ("channels_last", "contiguous"),
    "sign": ("torch", "ext"),  # cpnas.binary.sign: torch ops, or the one-pass C++ extension (cpnas.signext)
    # cpnas.accel (--compile auto): a training or search step eager or torch.compile'd; measured by `make bench`
    # only (compiling takes minutes), never at first use
    "compile": ("eager", "compiled"),
}
"""Every dispatched op and its exact forms; the first form is the default where nothing is measured."""

_lock = threading.Lock()
_memo: dict[str, str] = {}
_used: dict[str, dict[str, str]] = {}
_disk: dict[str, str] | None = None
_timings: dict[str, dict[str, float]] = {}
_fast: dict[tuple, str] = {}


def forced() -> dict[str, str]:
    """The forms ``$CPNAS_FORMS`` forces (``op=form`` pairs, comma-separated); bad entries are an error."""
    raw = os.environ.get(FORCE_ENV, "").strip()
    out: dict[str, str] = {}
    if not raw:
        return out
    recorded: dict[str, str] = {}
    for item in raw.split(","):
        if item.strip().startswith("@"):  # a run's record: its choices and forced forms, reused (restore_file)
            recorded.update(restore_file(item.strip()[1:]))
            continue
        op, _, form = item.strip().partition("=")
        if op not in FORMS or form not in FORMS[op]:
            choices = "; ".join(f"{o}={'|'.join(f)}" for o, f in FORMS.items())
            raise CpnasError(f"{FORCE_ENV}: bad entry {item.strip()!r}; use comma-separated op=form pairs "
                             f"among {choices}, or @FILE, a run's cost.json or metrics.json")
        out[op] = form
    return {**recorded, **out}


def machine_id() -> str:
    """CPU model, its instruction-set flags and the torch version, hashed: choices are valid only on the same."""
    info = cpu_info()
    text = f"{info['model']}|{info['flags']}|{platform.machine()}|{torch.__version__}"
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def cpu_info() -> dict[str, str]:
    """The CPU's model name and instruction-set flags (from ``/proc/cpuinfo`` where there is one)."""
    info = {"model": platform.processor() or platform.machine(), "flags": ""}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            name = name.strip()
            if name == "model name" and "model_seen" not in info:
                info["model"], info["model_seen"] = value.strip(), "1"
            elif name == "flags":
                info["flags"] = value.strip()
                break
    except OSError:
        pass
    info.pop("model_seen", None)
    return info


def cache_path() -> Path:
    from cpnas.paths import default_cache_dir

    return default_cache_dir() / "dispatch" / f"{machine_id()}.json"


def _load_disk() -> dict[str, str]:
    global _disk
    if _disk is None:
        try:
            _disk = json.loads(cache_path().read_text())
            if not isinstance(_disk, dict):
                _disk = {}
        except (OSError, ValueError):
            _disk = {}  # a missing or corrupt cache only costs a new measurement
    return _disk


def _save(key: str, form: str) -> None:
    """Merge one choice into the machine's cache file (atomic replace; a lost race costs one re-measurement)."""
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            current = json.loads(path.read_text())
            current = current if isinstance(current, dict) else {}
        except (OSError, ValueError):
            current = {}
        current[key] = form
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(current, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only or full cache disk: keep the choice in memory only


def _measuring_allowed() -> bool:
    from torch.utils._python_dispatch import _get_current_dispatch_mode

    return _get_current_dispatch_mode() is None and not torch.jit.is_tracing()


def time_forms(runs: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Median seconds of each form's callable, interleaved (:func:`cpnas.timing.median_times`)."""
    return median_times(runs, reps=5, warmup=1)


def choose(op: str, key: Sequence[object], runs: Callable[[], dict[str, Callable[[], object]]] | None) -> str:
    """The form of ``op`` for ``key``: forced, remembered, cached on disk, or measured now.

    ``runs`` builds one zero-argument callable per form (called only if a
    measurement is needed); ``None`` means "cannot measure here" (default form).
    ``runs`` may leave out a form unavailable on this machine; with one form
    left, that one is used and nothing is measured, remembered nor cached.
    """
    force = forced().get(op)
    if force is not None:
        return _record(op, key, force)
    skey = _skey(op, key)
    with _lock:
        form = _memo.get(skey) or _load_disk().get(skey)
    if form not in FORMS[op]:
        if runs is None or not _measuring_allowed():
            return _record(op, key, FORMS[op][0], remember=False)
        candidates = runs()
        if len(candidates) < 2:  # the other forms are unavailable here (e.g. no compiler): nothing to compare
            return _record(op, key, next(iter(candidates), FORMS[op][0]), remember=False)
        timings = time_forms(candidates)
        form = min(timings, key=timings.get)
        _save(skey, form)
        with _lock:
            _timings[skey] = timings
    with _lock:
        _memo[skey] = form
    return _record(op, key, form)


def remember(op: str, key: Sequence[object], timings_s: dict[str, float]) -> str:
    """Keep the fastest of ``timings_s`` (seconds by form, measured by the caller) as the choice for ``key``,
    in memory and in the machine's cache, as :func:`choose` does after measuring; returns it."""
    unknown = set(timings_s) - set(FORMS[op])
    if unknown:
        raise ValueError(f"{op} has no form(s) {sorted(unknown)}; its forms are {FORMS[op]}")
    skey = _skey(op, key)
    form = min(timings_s, key=timings_s.get)
    _save(skey, form)
    with _lock:
        _timings[skey] = dict(timings_s)
        _memo[skey] = form
    return _record(op, key, form)


def _skey(op: str, key: Sequence[object]) -> str:
    return f"{op}|{'|'.join(map(str, key))}|threads={torch.get_num_threads()}"


def choose_fast(op: str, key: tuple, runs: Callable[[], dict[str, Callable[[], object]]] | None) -> str:
    """:func:`choose` for a per-call hot path (``cpnas.binary.sign``, hundreds of calls a step).

    The answer is memoized on ``(op, key, threads, $CPNAS_FORMS)`` once it is forced or
    known (a dictionary look-up instead of building the string key), until :func:`reset`.
    """
    fkey = (op, key, torch.get_num_threads(), os.environ.get(FORCE_ENV, ""))
    form = _fast.get(fkey)
    if form is not None:
        return form
    form = choose(op, key, runs)
    if op in forced() or _skey(op, key) in _memo:  # forced or known, not a default for want of a measurement
        _fast[fkey] = form
    return form


def _record(op: str, key: Sequence[object], form: str, remember: bool = True) -> str:
    if remember:
        with _lock:
            _used.setdefault(op, {})[str(tuple(key))] = form
    return form


def chosen() -> dict[str, dict[str, str]]:
    """Every (op, key) → form this process dispatched so far (for run metadata)."""
    with _lock:
        return {op: dict(v) for op, v in _used.items()}


def timings() -> dict[str, dict[str, float]]:
    """The median seconds of every form this process measured, by cache key (``make bench`` prints them)."""
    with _lock:
        return {k: dict(v) for k, v in _timings.items()}


def summary() -> dict[str, dict[str, int]]:
    """How many keys of each op went to each form (a compact record for metadata)."""
    out: dict[str, dict[str, int]] = {}
    for op, keys in chosen().items():
        for form in keys.values():
            out.setdefault(op, {}).setdefault(form, 0)
            out[op][form] += 1
    return out


def reset(*, ignore_disk: bool = False) -> None:
    """Forget this process's choices; with ``ignore_disk`` also the machine's cache file, so every key is
    measured again (``make bench`` does this; the new choices are written back)."""
    global _disk
    with _lock:
        _memo.clear()
        _fast.clear()
        _used.clear()
        _timings.clear()
        _disk = {} if ignore_disk else None


# --- a run's record of its choices: what --resume and another machine reuse ----------------------------------


def record() -> dict[str, dict[str, str]]:
    """This process's choices as a run records them: ``{"choices": {cache key: form}, "forced": {op: form}}``.

    The cache keys hold the op, shapes and thread count (:func:`choose`); :func:`restore`
    makes another process (a ``--resume``, another machine) take the same forms.
    """
    with _lock:
        choices = dict(_memo)
    return {"choices": choices, "forced": forced()}


_restored_files: dict[str, dict[str, str]] = {}


def restore(rec: dict | None) -> int:
    """Take the choices of a run's :func:`record` (as if measured here); returns how many were taken.

    Forms forced by ``$CPNAS_FORMS`` still win. Keys this process meets but the record lacks
    (e.g. under another thread count) are measured as usual.
    """
    if not isinstance(rec, dict) or not isinstance(rec.get("choices"), dict):
        return 0
    taken = {k: f for k, f in rec["choices"].items()
             if isinstance(k, str) and k.split("|", 1)[0] in FORMS and f in FORMS[k.split("|", 1)[0]]}
    with _lock:
        _memo.update(taken)
        _fast.clear()
    return len(taken)


def restore_file(path: str) -> dict[str, str]:
    """:func:`restore` the record in a run's ``cost.json`` / ``metrics.json`` (``CPNAS_FORMS=@FILE``), once per
    file; returns the forms that run forced (:func:`forced` forces them here too)."""
    if path in _restored_files:
        return _restored_files[path]
    try:
        obj = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise CpnasError(f"{FORCE_ENV}=@{path}: cannot read a run record there ({exc})") from None
    rec = obj.get("kernel_forms_record", obj) if isinstance(obj, dict) else None
    if not isinstance(rec, dict) or not isinstance(rec.get("choices"), dict):
        raise CpnasError(f"{FORCE_ENV}=@{path}: no kernel_forms_record in it (a cost.json or metrics.json "
                         f"of a run of this version)")
    restore(rec)
    rec_forced = rec.get("forced") if isinstance(rec.get("forced"), dict) else {}
    _restored_files[path] = {op: f for op, f in rec_forced.items() if op in FORMS and f in FORMS[op]}
    return _restored_files[path]
