"""The packed model file: one file holding a packed 1-bit network (``cpnas deploy --save`` / ``--load``).

Layout (version 1; all integers little endian)::

    offset 0   8 bytes   magic  b"CPNASPK\\0"
    offset 8   4 bytes   format version (uint32)
    offset 12  8 bytes   header length H (uint64)
    offset 20  H bytes   header: UTF-8 JSON (below)
    then                 the tensors' bytes, one after another, in header order

The header holds ``meta`` (what rebuilds the network: genotype, dataset, channels,
cells, classes; :class:`~cpnas.deploy.network.PackedMeta`), ``data_bytes`` and
``data_sha256`` (size and SHA-256 of everything after the header: a truncated or
altered file is refused), and ``tensors``: for each, ``name`` (the key in the packed
network's state dict), ``dtype`` (``int64``, ``float32``, …), ``shape``, ``offset``
(from the start of the data) and ``nbytes``. What is stored:

* ``…weight_bits`` int64 — binary weights, 64 signs per word (bit 1 = −1), rows
  = output channels (1×1 convs) or channels (depthwise convs, one word per 64 taps);
* ``…scale`` / ``…bias`` float32 — the folded ``α·BN`` affine term of each packed
  1×1 conv's output channel; ``…alpha`` float32 — a depthwise conv's α;
* every real tensor of the network as it is (stem, classifier, BN of real layers).

Nothing is unpickled: reading a file runs no code from it. Any other version or a
malformed file raises one :class:`~cpnas.errors.CpnasError` line.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

import torch

from cpnas.errors import CpnasError

MAGIC = b"CPNASPK\0"
VERSION = 1
_PREFIX = struct.Struct("<8sIQ")
DTYPES = {"int64": torch.int64, "int32": torch.int32, "int8": torch.int8, "float32": torch.float32,
          "float64": torch.float64}
_NAMES = {v: k for k, v in DTYPES.items()}


def encode(meta: dict[str, Any] | None, state: dict[str, torch.Tensor]) -> bytes:
    """The file's bytes for a packed network's ``meta`` and state dict."""
    entries, chunks, offset = [], [], 0
    for name, t in state.items():
        t = t.detach().cpu().contiguous()
        if t.dtype not in _NAMES:
            raise ValueError(f"{name}: dtype {t.dtype} has no place in the packed model file")
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        entries.append({"name": name, "dtype": _NAMES[t.dtype], "shape": list(t.shape), "offset": offset,
                        "nbytes": len(raw)})
        chunks.append(raw)
        offset += len(raw)
    data = b"".join(chunks)
    header = json.dumps({"format": "cpnas-packed", "version": VERSION, "meta": meta, "tensors": entries,
                         "data_bytes": len(data), "data_sha256": hashlib.sha256(data).hexdigest()}).encode()
    return _PREFIX.pack(MAGIC, VERSION, len(header)) + header + data


def decode(blob: bytes, source: str = "the packed model file") -> tuple[dict[str, Any] | None, dict[str, torch.Tensor]]:
    """``(meta, state)`` from :func:`encode`'s bytes; a bad, truncated or other-version file is one clear error."""
    def bad(why: str) -> CpnasError:
        return CpnasError(f"{source}: not a readable cpnas packed model ({why}); write it again with "
                          "'cpnas deploy --save FILE'")

    if len(blob) < _PREFIX.size:
        raise bad(f"{len(blob)} bytes, shorter than its {_PREFIX.size}-byte prefix")
    magic, version, length = _PREFIX.unpack_from(blob)
    if magic != MAGIC:
        raise bad("wrong magic bytes")
    if version != VERSION:
        raise bad(f"format version {version}, this cpnas reads version {VERSION}")
    end = _PREFIX.size + length
    if end > len(blob):
        raise bad("truncated inside its header")
    try:
        header = json.loads(blob[_PREFIX.size:end].decode("utf-8"))
        entries, size, digest = header["tensors"], int(header["data_bytes"]), header["data_sha256"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise bad(f"unreadable header: {exc}") from None
    data = blob[end:]
    if len(data) != size:
        raise bad(f"{len(data)} data bytes where the header says {size}: truncated or padded")
    if hashlib.sha256(data).hexdigest() != digest:
        raise bad("its data does not match the checksum in its header")
    state: dict[str, torch.Tensor] = {}
    try:
        for e in entries:
            dtype = DTYPES[e["dtype"]]
            raw = bytearray(data[e["offset"]: e["offset"] + e["nbytes"]])
            flat = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
            state[e["name"]] = flat.reshape(e["shape"]).clone()
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise bad(f"tensor table entry {e!r}: {exc}") from None
    return header.get("meta"), state


def read(path: str | os.PathLike) -> tuple[dict[str, Any] | None, dict[str, torch.Tensor]]:
    """:func:`decode` of a file; a missing or unreadable path is one clear error."""
    p = Path(path)
    try:
        blob = p.read_bytes()
    except OSError as exc:
        raise CpnasError(f"{p}: cannot read the packed model file ({exc.strerror or exc})") from None
    return decode(blob, str(p))
