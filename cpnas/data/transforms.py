"""The batch transforms of the in-memory and the streaming loaders: normalisation, pad-crop-flip, cutout.

Their own module so that :mod:`cpnas.data.loader` and :mod:`cpnas.data.stream` share them
without importing each other.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 intensities to float in [-1, +1]: ``x / 127.5 − 1`` (§3.1).

    Division (not multiplication by 1/127.5) keeps 255 ↦ +1 exactly.
    """
    return images.float().div_(127.5).sub_(1.0)


def crop_flip(images: torch.Tensor, offsets: torch.Tensor, flip: torch.Tensor, pad: int) -> torch.Tensor:
    """Zero-pad by ``pad``, crop at per-sample ``offsets`` (B×2: row, col in [0, 2·pad]), mirror where ``flip``.

    Equivalent to torchvision's ``RandomCrop(size, padding=pad)`` +
    ``RandomHorizontalFlip`` per image, but one gather for the whole batch:
    the flip is folded into the column index, and each gathered element is a
    whole pixel (all channels). Works on uint8; the result is a channels-last
    ``B×C×H×W`` tensor, and a channels-last input needs no layout change.
    """
    b, c, h, w = images.shape
    hp, wp = h + 2 * pad, w + 2 * pad
    pixels = images.permute(0, 2, 3, 1).contiguous()  # no copy for channels-last input
    padded = F.pad(pixels, (0, 0, pad, pad, pad, pad)).reshape(b * hp * wp, c)
    dev = images.device
    offsets, flip = offsets.to(dev), flip.to(dev)
    ar_h, ar_w = torch.arange(h, device=dev), torch.arange(w, device=dev)
    rows = offsets[:, :1] + ar_h
    cols = torch.where(flip[:, None], offsets[:, 1:] + (w - 1) - ar_w, offsets[:, 1:] + ar_w)
    lin = rows[:, :, None] * wp + cols[:, None, :] + (torch.arange(b, device=dev) * (hp * wp))[:, None, None]
    return padded.index_select(0, lin.reshape(-1)).view(b, h, w, c).permute(0, 3, 1, 2)


def cutout_(x: torch.Tensor, centers: torch.Tensor, length: int) -> torch.Tensor:
    """Zero one ``length``-square per image, in place (DeVries & Taylor 2017; §3.1 "cutout").

    ``centers`` is B×2 (row, col), drawn uniformly over the image; the square
    spans ``[c − length//2, c + length//2)`` clipped at the borders, as in the
    reference code. Applied after normalisation, so the patch is 0 = mid-grey.
    """
    b, _, h, w = x.shape
    dev = x.device
    centers = centers.to(dev)
    half = length // 2
    ar_h, ar_w = torch.arange(h, device=dev), torch.arange(w, device=dev)
    in_rows = (ar_h >= centers[:, :1] - half) & (ar_h < centers[:, :1] + half)
    in_cols = (ar_w >= centers[:, 1:] - half) & (ar_w < centers[:, 1:] + half)
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])
    return x.mul_(keep[:, None].to(x.dtype))
