"""Atomic file writes and checkpoints (DESIGN §5: every write is atomic).

A write goes to a temporary file in the target's directory and is renamed over
the target, so a crash, a SIGKILL or a full disk never leaves a half-written
artifact behind: the previous version stays intact.

In a data-parallel run (:mod:`cpnas.distributed`) only rank 0 writes: on the other
ranks every write here is skipped (their state equals rank 0's), so a run folder
keeps one writer and exactly one set of artifacts.
"""

from __future__ import annotations

import errno
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

from cpnas import distributed
from cpnas.errors import CpnasError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


TEMP_MARK = ".cpnas-partial-"
"""The mark in the name of every temporary file :func:`write_with` creates (``.<name>.cpnas-partial-XXXX.tmp``):
only files so named are ever removed as orphans, never a user's own ``.*.tmp``."""

_UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


def unwritable_error(path: str | os.PathLike, exc: OSError) -> CpnasError:
    """The one-line error of a folder or file that cannot be written (permissions, read-only file system)."""
    why = "read-only file system" if exc.errno == errno.EROFS else "permission denied"
    return CpnasError(f"cannot write {path} ({why}); choose a writable folder, e.g. --out under your home "
                      f"or results/")


def write_with(path: str | os.PathLike, write: Callable[[io.BufferedWriter], object]) -> Path:
    """Atomically write ``path`` by calling ``write(fh)`` on a temporary binary file.

    The file gets the usual ``0666 & ~umask`` mode (``mkstemp`` alone would leave 0600).
    On a data-parallel rank other than 0 nothing is written. A folder that cannot be
    written (permissions, read-only file system) or a full disk is a :class:`CpnasError`.
    """
    path = Path(path)
    if not distributed.is_main():
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TEMP_MARK}", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        if exc.errno in _UNWRITABLE:
            raise unwritable_error(path.parent, exc) from None
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise CpnasError(f"no space left on the device while writing {path}; free some disk space and "
                             f"rerun with --resume") from None
        raise
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _remove_quietly(tmp)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise CpnasError(
                f"no space left on the device while writing {path}; the previous "
                f"version of the file (if any) is intact. Free some disk space and "
                f"rerun with --resume."
            ) from exc
        if exc.errno in _UNWRITABLE:
            raise unwritable_error(path, exc) from None
        raise
    except BaseException:
        _remove_quietly(tmp)
        raise
    return path


def remove_orphaned_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files a killed :func:`write_with` left in ``folder`` (``.<name>.cpnas-partial-*.tmp``).

    Called when a run starts or resumes in ``folder``, after its arguments and data are
    checked: a run folder has one writer, so any such file there is an orphan of an
    earlier, killed process. Only names carrying :data:`TEMP_MARK` are touched: a
    user's own ``.notes.tmp`` stays.
    """
    folder = Path(folder)
    if not folder.is_dir() or not distributed.is_main():  # another rank's temp files are rank 0's, alive
        return []
    orphans = [p for p in folder.glob(f".*{TEMP_MARK}*.tmp") if p.is_file()]
    for p in orphans:
        _remove_quietly(str(p))
    return orphans


def _remove_quietly(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return write_with(path, lambda fh: fh.write(data))


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file, turning a missing or malformed file into a CpnasError."""
    path = Path(path)
    if path.is_dir():
        raise CpnasError(f"{path}: is a directory, not a JSON file")
    if not path.is_file():
        raise CpnasError(f"{path}: no such file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CpnasError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from exc
    except UnicodeDecodeError as exc:
        raise CpnasError(f"{path}: not a UTF-8 text file") from exc
    except RecursionError:
        raise CpnasError(f"{path}: JSON nested too deeply to be a run file") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts (sys.set_int_max_str_digits)
        raise CpnasError(f"{path}: not a usable JSON file ({str(exc).splitlines()[0]})") from None


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Save a checkpoint dict with ``torch.save`` atomically (rank 0 only in a data-parallel run)."""
    if not distributed.is_main():
        return Path(path)
    buf = io.BytesIO()
    torch.save(state, buf)
    return write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by :func:`save_checkpoint`: a dict, or one clear :class:`CpnasError`."""
    path = Path(path)
    if not path.is_file():
        raise CpnasError(f"{path}: no checkpoint to resume from; run without --resume to start afresh")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # torch raises several unrelated types for a damaged file
        raise CpnasError(f"{path}: checkpoint is unreadable ({exc}); delete it to restart the run") from exc
    if not isinstance(state, dict):
        raise CpnasError(f"{path}: not a cpnas checkpoint (it holds a {type(state).__name__}, not the dict "
                         f"cpnas writes); move it away to start the run afresh")
    return state


LOCK = ".cpnas-lock"
"""The lock file of a run folder being computed (:func:`run_lock`): JSON with the PID, host and start time."""


def lock_owner(folder: str | os.PathLike) -> dict | None:
    """Who holds ``folder``'s lock (``{"pid", "host", "started"}``), or None when it is free or its holder died.

    A lock of this host whose process is gone is stale: it is removed here. A lock of
    another host cannot be checked from here and counts as held.
    """
    import socket
    import time

    path = Path(folder) / LOCK
    try:
        owner = json.loads(path.read_text())
        if not isinstance(owner, dict):
            raise ValueError
    except FileNotFoundError:
        return None
    except (OSError, ValueError):  # being written this instant, or its writer was killed while writing it
        try:
            young = time.time() - path.stat().st_mtime < 30
        except FileNotFoundError:
            return None
        if young:
            return {"pid": None, "host": None, "started": "now"}
        owner = {"pid": None, "host": socket.gethostname()}
    if owner.get("host") == socket.gethostname() and not _alive(owner.get("pid")):
        _remove_quietly(str(path))  # stale: its process ended without releasing it (killed)
        return None
    return owner


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


class RunLocked(CpnasError):
    """Another live process computes this run folder."""


class run_lock:
    """``with run_lock(folder):`` — hold ``folder`` while this process computes the run in it.

    The lock is a file created exclusively (``O_EXCL``) holding the PID and host, so two
    workers given one run key never compute it together: the second waits (``wait`` seconds
    at most, polling; None: as long as it takes) and then finds the run finished, or raises
    :class:`RunLocked` naming the holder. A lock whose process died is stale and taken over
    (:func:`lock_owner`). Reentrant within a process (a training's nested Parent run). Folders
    it created are removed again when they are still empty (a run refused before writing).
    """

    _held: dict[Path, int] = {}

    def __init__(self, folder: str | os.PathLike, *, wait: float | None = None, poll: float = 1.0) -> None:
        self.folder = Path(folder).absolute()
        self.wait, self.poll = wait, poll

    def __enter__(self) -> "run_lock":
        import socket
        import time

        if not distributed.is_main():  # rank 0 holds the lock for a data-parallel run
            return self
        if self._held.get(self.folder):
            self._held[self.folder] += 1
            return self
        self._created = [p for p in (self.folder, *self.folder.parents) if not p.exists()]
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / LOCK
        start = time.monotonic()
        while True:
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = lock_owner(self.folder)
                if owner is None:
                    continue  # free, or stale and removed: try again
                if self.wait is not None and time.monotonic() - start >= self.wait:
                    raise RunLocked(f"{self.folder} is being computed by process {owner.get('pid')} on "
                                    f"{owner.get('host')} (since {owner.get('started')}); wait for it, or delete "
                                    f"{path} if that process is gone") from None
                time.sleep(self.poll)
                continue
            except OSError as exc:
                if exc.errno in _UNWRITABLE:
                    raise unwritable_error(self.folder, exc) from None
                raise
            with os.fdopen(fd, "w") as fh:
                json.dump({"pid": os.getpid(), "host": socket.gethostname(),
                           "started": time.strftime("%Y-%m-%d %H:%M:%S")}, fh)
            self._held[self.folder] = 1
            return self

    def __exit__(self, *exc: object) -> None:
        if not distributed.is_main() or self.folder not in self._held:
            return
        self._held[self.folder] -= 1
        if self._held[self.folder] == 0:
            del self._held[self.folder]
            _remove_quietly(str(self.folder / LOCK))
            for folder in getattr(self, "_created", []):  # a run refused before writing leaves no empty folder
                try:
                    folder.rmdir()
                except OSError:
                    break
