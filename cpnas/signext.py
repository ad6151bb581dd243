"""The one-pass sign + clipped STE of the 1-bit training step, as a C++ CPU extension.

:mod:`cpnas.binary`'s torch form of ``sign`` takes two passes forward (``x + 0``,
then ``copysign``), one backward (``hardtanh_backward``), and runs its autograd
``Function`` in Python. ``csrc/sign_ste.cpp`` computes the same values bit for
bit (forward ``copysign(1, x + 0)``, backward ``g·1{|x| ≤ 1}``, NaN handled as the
torch form) in one vectorized pass each way, with a C++ autograd ``Function``
that saves ``x`` for the backward as the torch form does (form ``ext``; a variant
saving a 1-byte mask instead of ``x`` measured slower and was left out).

Whether it is faster than the torch form depends on the machine and the
shape, so :func:`cpnas.binary.sign` leaves it to :mod:`cpnas.dispatch` (op
``sign``; ``CPNAS_FORMS=sign=torch`` forces the torch form).

:func:`extension` builds the source with :func:`torch.utils.cpp_extension.load`
(g++ and ninja, ``-O3 -march=native``) into ``$CPNAS_CACHE/torch_extensions/<name>``
at first use (the name hashes the source and the machine, as
:mod:`cpnas.deploy.kernels`); later processes load that build. Without a compiler
or if the build fails, :func:`available` is ``False`` after one log line and the
torch form is used: training never depends on the extension.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path
from types import ModuleType

import torch

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("csrc") / "sign_ste.cpp"
CFLAGS = ("-O3", "-march=native", "-fno-math-errno")
"""No -ffast-math: it would fold ``x + 0.0`` away and break ``sign(-0.0) = +1``."""
DTYPES = (torch.float32, torch.float64)

_lock = threading.Lock()
_ext: ModuleType | None = None
_failed: str | None = None


def build_name() -> str:
    from cpnas.dispatch import machine_id

    digest = hashlib.sha1(SOURCE.read_bytes() + " ".join(CFLAGS).encode() + machine_id().encode()).hexdigest()
    return f"cpnas_sign_{digest[:12]}"


def build_dir() -> Path:
    from cpnas.paths import default_cache_dir

    return default_cache_dir() / "torch_extensions" / build_name()


def extension() -> ModuleType | None:
    """The compiled extension, built on first use; ``None`` (logged once) where it cannot be built."""
    global _ext, _failed
    if _ext is not None or _failed is not None:
        return _ext
    with _lock:
        if _ext is None and _failed is None:
            from cpnas.deploy.kernels import _first_error, cpp_extension, toolchain_missing

            missing = toolchain_missing()
            if missing:
                _failed = f"no {missing}"
            else:
                load = cpp_extension().load
                folder = build_dir()
                try:
                    folder.mkdir(parents=True, exist_ok=True)
                    os.environ.setdefault("MAX_JOBS", "2")
                    log.info("loading the sign+STE extension from %s (built there on first use, about half a "
                             "minute)", folder)
                    _ext = load(name=build_name(), sources=[str(SOURCE)], extra_cflags=list(CFLAGS),
                                build_directory=str(folder), with_cuda=False, verbose=False)
                except (RuntimeError, OSError, ImportError) as exc:  # compiler errors arrive as RuntimeError
                    _failed = f"its build failed in {folder} ({_first_error(exc)})"
            if _failed is not None:
                log.warning("cpnas: the one-pass sign+STE extension is unavailable (%s); using the torch form. "
                            "Install g++ and ninja to build it.", _failed)
    return _ext


def available() -> bool:
    """Whether the extension can be used here (builds it if needed; never raises)."""
    return extension() is not None


def unavailable_reason() -> str | None:
    return _failed


def supports(x: torch.Tensor) -> bool:
    """Whether the extension's form applies to ``x``: a contiguous or channels-last CPU float32/float64 tensor, no
    dispatch mode active (a ``TorchDispatchMode``, e.g. a flop counter or fake tensors, sees the torch form's ops)."""
    return (x.device.type == "cpu" and x.dtype in DTYPES and not x.is_meta
            and (x.is_contiguous() or (x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)))
            and torch._C._len_torch_dispatch_stack() == 0)


def sign_ste(x: torch.Tensor) -> torch.Tensor:
    """``sign`` with the clipped STE, saving ``x`` (form ``ext``)."""
    return _ext.sign_ste(x)
