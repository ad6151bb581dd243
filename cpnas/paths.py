"""Where things live, and the one place that writes paper artifacts to disk.

* ``figures/`` and ``tables/`` (committed) hold the paper artifacts of a real run
  at the ``cpu`` or ``paper`` scale; a ``smoke`` run (CI, nbval) writes its
  artifacts under ``results/smoke/figures`` and ``results/smoke/tables`` instead,
  so tests never overwrite the committed outputs.
* ``results/<scale>/…`` holds run outputs (configs, histories, genotypes,
  metrics, checkpoints).

The project root is found by walking up from this file to ``pyproject.toml``;
``CPNAS_HOME`` overrides it (e.g. for an installed, non-editable package).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from cpnas.io import write_text


def project_root() -> Path:
    env = os.environ.get("CPNAS_HOME")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parent
    for parent in (here, *here.parents):
        if (parent / "pyproject.toml").is_file() and (parent / "cpnas").is_dir():
            return parent
    return Path.cwd()


def portable(path: str | os.PathLike | None) -> str | None:
    """``path`` as it is stored in run metadata: relative to the project root (``CPNAS_HOME``), never absolute
    where a relative form exists, so committed JSON holds no path of the machine that wrote it."""
    if path is None:
        return None
    p = Path(path).expanduser().resolve()
    try:
        return os.path.relpath(p, project_root().resolve())
    except ValueError:  # another drive (Windows): no relative form
        return str(p)


CACHE_ENV = "CPNAS_CACHE"
"""The environment variable naming the cache folder (:func:`default_cache_dir`)."""


def default_cache_dir() -> Path:
    """``$CPNAS_CACHE``, else ``~/.cache/cpnas``: decoded data sets, built C++ extensions, kernel-form
    choices and compiled graphs."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "cpnas").expanduser()


def results_dir(scale: str) -> Path:
    """``results/<scale>`` under the project root."""
    return project_root() / "results" / scale


def artifact_dir(kind: str, scale: str) -> Path:
    """Directory for ``figures`` or ``tables`` of a run at ``scale`` (smoke runs stay under results/)."""
    if kind not in ("figures", "tables"):
        raise ValueError(f"artifact kind must be 'figures' or 'tables', got {kind!r}")
    root = project_root()
    d = root / "results" / "smoke" / kind if scale == "smoke" else root / kind
    d.mkdir(parents=True, exist_ok=True)
    return d


class Saved(list):
    """The files an artifact was written to (absolute :class:`Path` items), shown relative to the project
    root, so an executed notebook displays no path of the machine that ran it."""

    def __repr__(self) -> str:
        return "saved: " + ", ".join(portable(p) for p in self)


def save_figure(fig, name: str, scale: str) -> list[Path]:
    """Save a matplotlib figure as ``<name>.png`` and ``<name>.pdf`` (atomically)."""
    import io

    from cpnas.io import write_bytes

    out = []
    for ext in ("png", "pdf"):
        buf = io.BytesIO()
        # A fixed creation date keeps the PDF bytes reproducible between runs.
        meta = {"CreationDate": None} if ext == "pdf" else {"Software": None}
        fig.savefig(buf, format=ext, dpi=150, bbox_inches="tight", metadata=meta)
        out.append(write_bytes(artifact_dir("figures", scale) / f"{name}.{ext}", buf.getvalue()))
    return Saved(out)


def save_graph(graph, name: str, scale: str) -> list[Path]:
    """Render a ``graphviz.Digraph`` to ``<name>.png`` and ``<name>.pdf`` (needs ``dot``)."""
    from cpnas.io import write_bytes

    out = []
    for ext in ("png", "pdf"):
        data = graph.pipe(format=ext)
        if ext == "pdf":
            data = fixed_pdf_date(data)
        out.append(write_bytes(artifact_dir("figures", scale) / f"{name}.{ext}", data))
    return Saved(out)


def fixed_pdf_date(data: bytes) -> bytes:
    """Set a PDF's ``/CreationDate`` to 1970-01-01 so that re-rendering gives the same bytes.

    Graphviz's cairo backend stamps the current time and ignores ``SOURCE_DATE_EPOCH``;
    the 14 date digits are replaced in place, so the byte offsets of the PDF's
    cross-reference table stay valid.
    """
    import re

    return re.sub(rb"(/CreationDate \(D:)\d{14}", rb"\g<1>19700101000000", data)


def save_table(df, name: str, scale: str, *, caption: str | None = None) -> list[Path]:
    """Write a DataFrame as ``<name>.csv`` and ``<name>.md`` (with an optional caption line)."""
    d = artifact_dir("tables", scale)
    csv = write_text(d / f"{name}.csv", df.to_csv(index=False))
    md_text = (f"{caption}\n\n" if caption else "") + df.to_markdown(index=False, missingval="–") + "\n"
    md = write_text(d / f"{name}.md", md_text)
    return Saved([csv, md])


# What the pipeline itself writes: a change there is a result, not a change of the code that made it.
GENERATED_DIRS = ("notebooks", "tables", "figures", "results")


def git_commit() -> str | None:
    """The project's git commit, ``+dirty`` with uncommitted changes to tracked files outside
    :data:`GENERATED_DIRS`; ``None`` outside git.

    ``make reproduce`` rewrites the committed notebooks, tables and figures as it goes, so counting them
    would mark every notebook after the first one dirty.
    """
    import subprocess

    root = project_root()
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                *(f":(exclude){d}" for d in GENERATED_DIRS)], cwd=root,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if dirty else head


def runs_commit(scale: str) -> dict[str, str | None]:
    """The last commit that changed ``results/<scale>`` (the committed runs a notebook shows) and its date.

    ``+uncommitted`` follows the hash when a finished run there (its ``metrics.json`` or ``complete.json``)
    is not in git, or a committed run file was changed. ``None`` outside git. This, not the clock or the
    code's own commit, is what a re-execution from the same runs shows, so it rewrites no notebook.
    """
    import subprocess

    root = project_root()
    folder = os.path.relpath(results_dir(scale), root)

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30,
                              check=True).stdout.strip()

    try:
        last = git("log", "-1", "--format=%H %cs", "--", folder).split()
        finished = [f":(glob){folder}/**/{name}" for name in ("metrics.json", "complete.json")]
        pending = git("ls-files", "--others", "--ignored", "--exclude-standard", "--", *finished) \
            or git("status", "--porcelain", "--untracked-files=no", "--", folder)
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "date": None}
    commit, date = last if len(last) == 2 else (None, None)
    if pending:
        commit = f"{commit}+uncommitted" if commit else "uncommitted"
    return {"commit": commit, "date": date}


def run_info(scale: str, dataset: str | None = None, device: str | None = None) -> dict[str, Any]:
    """What an artifact comes from (shown atop each notebook): scale, dataset, the committed runs it reads
    (:func:`runs_commit`), and the device and versions that render it."""
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.cuda.get_device_name(0) if device.startswith("cuda") and torch.cuda.is_available() \
        else f"cpu ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"
    if dataset is not None and os.path.isabs(str(dataset)):
        dataset = portable(dataset)  # a data folder: shown relative to the project root
    runs = runs_commit(scale)
    return {"scale": scale, "dataset": dataset, "runs": portable(results_dir(scale)),
            "runs_commit": runs["commit"], "runs_date": runs["date"], "device": dev,
            "torch": torch.__version__, "python": platform.python_version()}
