"""Decoding one image file to a tensor: shared by the in-memory sources and the streaming loader.

Its own module so that :mod:`cpnas.data.folder` and :mod:`cpnas.data.stream` both import it
without importing each other.
"""

from __future__ import annotations

import functools
import io

import torch

from cpnas.errors import CpnasError


@functools.lru_cache(maxsize=1)
def _torchvision_decoders() -> tuple | None:
    try:
        from torchvision.io import ImageReadMode, decode_image, decode_jpeg
    except ImportError:  # deprecated in torchvision 0.29, to be removed: PIL then decodes everything
        return None
    return ImageReadMode.RGB, decode_image, decode_jpeg


def _decode_bytes(data: bytes, path: str) -> torch.Tensor:
    """Decode one image file's bytes to a 3×H×W uint8 tensor (grayscale/CMYK/palette → RGB).

    libjpeg-turbo through ``torchvision.io`` (faster than PIL on small JPEGs, identical
    pixels on the CIFAR-10 copy), PIL ``convert("RGB")`` for
    anything it cannot read.
    """
    decoders = _torchvision_decoders()
    if decoders is not None:
        rgb, decode_image, decode_jpeg = decoders
        try:
            raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)
            # decode_jpeg directly: decode_image's format sniffing costs more than decoding a 32×32 JPEG
            decode = decode_jpeg if data[:3] == b"\xff\xd8\xff" else decode_image
            return decode(raw, mode=rgb)
        except (RuntimeError, ValueError):
            pass  # a format torchvision does not read (BMP, TIFF, …): PIL reads it below
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            rgb = im.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise CpnasError(f"cannot decode the image file {path!r} ({exc}); delete or replace it") from exc
    return torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8).view(
        rgb.height, rgb.width, 3).permute(2, 0, 1).contiguous()
