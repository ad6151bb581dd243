"""Executed notebooks without the marks of the moment they ran, so that re-running them from the same runs
rewrites no byte of the committed ones.

Papermill (through nbclient) stamps the notebook and each cell with wall-clock times: the notebook's
``metadata.papermill.{start_time, end_time, duration}``, each cell's ``metadata.papermill.{start_time,
end_time, duration}`` and its ``metadata.execution`` (the times of the kernel's messages). They say when a
run happened, not what it computed; the outputs, the execution counts and each cell's ``status`` and
``exception`` stay.

``python -m cpnas.nbclean NOTEBOOK...`` strips them in place; ``make reproduce-*`` runs it after papermill.
A notebook is JSON: this module reads and writes it as papermill and nbformat write it (keys sorted, one
space of indent), without needing either.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from cpnas.errors import CpnasError, exit_status

TIMING_KEYS = ("start_time", "end_time", "duration")
"""The wall-clock fields papermill writes into the notebook's and each cell's ``metadata.papermill``."""


def strip_timing(nb: dict[str, Any]) -> dict[str, Any]:
    """Remove the execution times from a notebook's JSON ``dict``, in place; returns it."""
    for key in TIMING_KEYS:
        nb.get("metadata", {}).get("papermill", {}).pop(key, None)
    for cell in nb.get("cells", []):
        meta = cell.get("metadata", {})
        meta.pop("execution", None)
        for key in TIMING_KEYS:
            meta.get("papermill", {}).pop(key, None)
    return nb


def dumps(nb: dict[str, Any]) -> str:
    """A notebook's JSON text as nbformat (and so papermill and Jupyter) writes it."""
    return json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False)


def clean_file(path: str | os.PathLike) -> bool:
    """Strip the execution times of the notebook at ``path`` (atomically); whether the file changed."""
    from cpnas.io import write_text

    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise CpnasError(f"cannot read the notebook {path} ({exc.strerror})") from None
    try:
        nb = json.loads(text)
    except json.JSONDecodeError:
        raise CpnasError(f"{path} is not a notebook (not JSON)") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise CpnasError(f"{path} is not a notebook (no list of cells)")
    cleaned = dumps(strip_timing(nb))
    if cleaned == text:
        return False
    write_text(path, cleaned)
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cpnas.nbclean",
                                description="Strip papermill's wall-clock stamps from executed notebooks, in place "
                                            "(make reproduce-* runs it after each notebook).")
    p.add_argument("notebooks", nargs="+", help="executed notebooks (.ipynb), rewritten in place")
    args = p.parse_args(argv)

    def work() -> None:
        for path in args.notebooks:
            clean_file(path)

    return exit_status(p.prog, work)


if __name__ == "__main__":
    sys.exit(main())
