"""The C++ XNOR-popcount extension: built at first use, cached, with one clear error without a compiler.

:func:`extension` compiles ``csrc/xnor.cpp`` with :func:`torch.utils.cpp_extension.load`
(g++ and ninja, ``-O3 -march=native``, so the AVX-512 VPOPCNTDQ or AVX2 path is
taken where the CPU has it) into ``$CPNAS_CACHE/torch_extensions/<name>``; the name
holds a hash of the source and of the machine (:func:`cpnas.dispatch.machine_id`),
so a cache shared between machines never loads a binary built for another CPU.
Later processes load the cached build instead of compiling again.

Without a C++ compiler or ninja, :func:`extension` raises one
:class:`~cpnas.errors.CpnasError` naming the fix; nothing else in :mod:`cpnas`
needs the extension (the simulated 1-bit network is plain PyTorch).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
from pathlib import Path
from types import ModuleType

import torch

from cpnas.errors import CpnasError

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("csrc") / "xnor.cpp"
CFLAGS = ("-O3", "-march=native", "-fno-math-errno")
"""-march=native: the build runs on the machine that uses it and picks its popcount path."""
ISA_ENV = "CPNAS_XNOR_ISA"
ISA_FLAGS = {"native": (), "avx2": ("-mno-avx512f",), "portable": ("-mno-avx512f", "-mno-avx2", "-mno-avx")}
"""``$CPNAS_XNOR_ISA`` builds a narrower path than the CPU allows (to measure the AVX2 or portable kernels on an
AVX-512 machine); default ``native``."""


def chosen_isa(isa: str | None = None) -> str:
    """``isa``, else ``$CPNAS_XNOR_ISA``, else ``native``; an unknown value is one clear error."""
    isa = isa or os.environ.get(ISA_ENV, "native").strip() or "native"
    if isa not in ISA_FLAGS:
        raise CpnasError(f"{ISA_ENV}={isa!r}: choose one of {', '.join(ISA_FLAGS)}")
    return isa


def cflags(isa: str | None = None) -> tuple[str, ...]:
    """The compiler flags: :data:`CFLAGS` and those of the instruction set (:func:`chosen_isa`)."""
    return CFLAGS + ISA_FLAGS[chosen_isa(isa)]


INSTALL_HINT = ("install a C++ compiler and ninja: 'apt-get install g++ ninja-build' (Debian/Ubuntu) "
                "or 'pip install ninja' with any g++")

_lock = threading.Lock()
_ext: ModuleType | None = None
_narrower: dict[str, ModuleType] = {}  # builds for an instruction set asked by name (extension(isa))


def _compiler() -> str | None:
    return shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++")


def cpp_extension() -> ModuleType:
    """``torch.utils.cpp_extension``, imported without its CPU-only import warning.

    On a machine without CUDA its import logs "No CUDA runtime is found, using CUDA_HOME=…"
    to stderr: noise for CPU extensions (and an unexpected stderr output for nbval).
    """
    import importlib

    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return importlib.import_module("torch.utils.cpp_extension")
    finally:
        logger.setLevel(level)


def toolchain_missing() -> str | None:
    """What is missing to build the extension (``None`` when g++, ninja and Python.h are all there)."""
    import sysconfig

    is_ninja_available = cpp_extension().is_ninja_available

    headers = (Path(sysconfig.get_paths()["include"]) / "Python.h").is_file()
    missing = [name for name, ok in (("a C++ compiler (g++)", _compiler() is not None),
                                     ("ninja", is_ninja_available()),
                                     ("the Python headers (python3-dev)", headers)) if not ok]
    return " and ".join(missing) or None


def build_name(isa: str | None = None) -> str:
    """Extension name: source hash + machine hash (a -march=native build only runs where it was built)."""
    from cpnas.dispatch import machine_id

    digest = hashlib.sha1(SOURCE.read_bytes() + " ".join(cflags(isa)).encode() + machine_id().encode()).hexdigest()
    return f"cpnas_xnor_{digest[:12]}"


def build_dir(isa: str | None = None) -> Path:
    from cpnas.paths import default_cache_dir

    return default_cache_dir() / "torch_extensions" / build_name(isa)


def extension(isa: str | None = None) -> ModuleType:
    """The compiled extension (``pack_signs``, ``xnor_gemm``, ``simd_path``, ``CellPlan``), built on first use.

    ``isa`` (a key of :data:`ISA_FLAGS`): a build for that instruction set, loaded beside the default one (the
    packed network keeps using the default; a ``CellPlan`` made from this module runs its kernels).
    """
    global _ext
    if isa is not None and chosen_isa(isa) != chosen_isa():
        with _lock:
            if isa not in _narrower:
                _narrower[isa] = _build(isa)
        return _narrower[isa]
    if _ext is not None:
        return _ext
    with _lock:
        if _ext is None:
            _ext = _build(None)
    return _ext


def _build(isa: str | None) -> ModuleType:
    """Compile (or load the cached build of) the extension for ``isa`` (``None``: :func:`chosen_isa`)."""
    missing = toolchain_missing()
    if missing:
        raise CpnasError(f"the packed 1-bit kernels need {missing} to build once; {INSTALL_HINT}. "
                         "The simulated 1-bit network (plain PyTorch) works without them.")
    load = cpp_extension().load
    folder = build_dir(isa)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MAX_JOBS", "2")
    log.info("loading the XNOR-popcount extension from %s (built there on first use, about half a minute)", folder)
    try:
        ext = load(name=build_name(isa), sources=[str(SOURCE)], extra_cflags=list(cflags(isa)),
                   build_directory=str(folder), with_cuda=False, verbose=False)
    except (RuntimeError, OSError, ImportError) as exc:  # compiler errors arrive as RuntimeError
        raise CpnasError(f"building the XNOR-popcount extension failed in {folder} ({_first_error(exc)}); "
                         f"{INSTALL_HINT}, or delete that folder and retry") from exc
    log.info("XNOR-popcount extension ready: %s path", ext.simd_path())
    return ext


def _first_error(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors[1] if len(errors) > 1 else (errors or lines or [type(exc).__name__])[0])[:300]


def available() -> bool:
    """Whether the extension can be used here (builds it if needed; never raises)."""
    try:
        extension()
    except CpnasError:
        return False
    return True


def pack_signs(rows: torch.Tensor) -> torch.Tensor:
    """Sign bits of each row of a 2-D float32 tensor, 64 per int64 word (bit 1 = negative, ±0 → +1)."""
    return extension().pack_signs(rows)


def xnor_conv1x1(rows: torch.Tensor, weight_t: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """:func:`pack_signs` and :func:`xnor_gemm` fused, block by block of rows (what the packed network runs)."""
    return extension().xnor_conv1x1(rows, weight_t, scale, bias)


def sign_pad(rows: torch.Tensor, n: int, h: int, w: int, pad: int) -> torch.Tensor:
    """int8 signs (+1 / −1) of float rows ``(n·h·w, C)`` as an ``(n, h+2p, w+2p, ⌈C/64⌉·64)`` image, 0 in the border."""
    return extension().sign_pad(rows, n, h, w, pad)


def binary_depthwise(signs: torch.Tensor, weight: torch.Tensor, alpha: torch.Tensor, k: int, stride: int,
                     dilation: int, with_sums: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Binary depthwise conv of a :func:`sign_pad` image with int8 ±1 weights ``(k·k, C_pad)`` and scales ``alpha``.

    Returns the sign bits (:func:`pack_signs` layout) of ``α·d`` as the simulated network's float32 conv
    computes it — the sign of the integer sum ``d``, and at ``d = 0`` the sign of the float32 sum of the
    ``±α`` terms in the conv's order (:mod:`cpnas.deploy.packed`) — and, with ``with_sums``, the integers
    ``d`` themselves as int8 ``(rows, C_pad)``.
    """
    bits, sums = extension().binary_depthwise(signs, weight, alpha, k, stride, dilation, with_sums)
    return bits, sums


def xnor_gemm_sign_pad(packed: torch.Tensor, weight_t: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor,
                       channels: int, n: int, h: int, w: int, pad: int) -> torch.Tensor:
    """:func:`xnor_gemm` whose output is written as :func:`sign_pad` writes it (the next depthwise conv's input)."""
    return extension().xnor_gemm_sign_pad(packed, weight_t, scale, bias, channels, n, h, w, pad)


def binary_chain(rows: torch.Tensor, n: int, h: int, w: int, tensors: list[torch.Tensor],
                 ints: list[int]) -> tuple[torch.Tensor, int, int]:
    """Binary ``depthwise → pointwise + folded BN`` stages in one call: float rows in, float rows out.

    Per stage ``tensors`` holds (depthwise int8 weights, depthwise α, pointwise ``weight_t``, scale, bias) and ``ints``
    (k, stride, padding, dilation). Returns the last stage's rows ``(n·h'·w', C_out)``, ``h'`` and ``w'``.
    """
    return extension().binary_chain(rows, n, h, w, tensors, ints)


def xnor_gemm(packed: torch.Tensor, weight_t: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor,
              channels: int) -> torch.Tensor:
    """``scale[o]·(channels − 2·popcount(packed[p] ⊕ w[o])) + bias[o]``, float32 ``(rows, O)``."""
    return extension().xnor_gemm(packed, weight_t, scale, bias, channels)
