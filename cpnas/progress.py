"""Progress bars: tqdm, off under CI, with ``CPNAS_PROGRESS=0``, with ``cpnas -q``, and on data-parallel ranks but 0."""

from __future__ import annotations

import importlib.util
import os
from typing import Iterable, TypeVar

# Notebook (widget) bars only where ipywidgets is installed; otherwise tqdm.auto would warn
# "IProgress not found" into every executed notebook. Text bars work everywhere.
if importlib.util.find_spec("ipywidgets") is not None:
    from tqdm.auto import tqdm
else:
    from tqdm.std import tqdm

T = TypeVar("T")


def progress_enabled() -> bool:
    if os.environ.get("CPNAS_PROGRESS", "").lower() in ("0", "false", "no", "off"):
        return False
    from cpnas import distributed

    if not distributed.is_main():  # one bar per run, rank 0's (cpnas.distributed)
        return False
    return not os.environ.get("CI")


def progress(iterable: Iterable[T], desc: str = "", total: int | None = None, leave: bool = False, **kw) -> Iterable[T]:
    """Wrap ``iterable`` in a tqdm bar when progress bars are enabled."""
    return tqdm(iterable, desc=desc, total=total, leave=leave, disable=not progress_enabled(),
                dynamic_ncols=True, **kw)
