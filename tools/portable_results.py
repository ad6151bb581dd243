"""Rewrite committed run JSON so that it holds no absolute path of the machine that wrote it.

Every string field named ``data_root``, ``genotype_path``, ``out`` or ``search`` that holds an
absolute path becomes :func:`cpnas.paths.portable` of it (relative to the project root). Values
of other fields are left alone; run keys never held these fields, so no cache is invalidated.
Usage: ``python tools/portable_results.py [FILES...]`` (default: every tracked ``results/**/*.json``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cpnas.paths import portable, project_root

FIELDS = {"data_root", "genotype_path", "out", "search"}


def _fix(obj, old_roots):
    if isinstance(obj, dict):
        return {k: (_rel(v, old_roots) if k in FIELDS and isinstance(v, str) else _fix(v, old_roots))
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [_fix(v, old_roots) for v in obj]
    return obj


def _rel(value: str, old_roots: list[str]) -> str:
    if not value.startswith("/"):
        return value
    for root in old_roots:  # a clone elsewhere wrote its own root: map it onto this one
        if value == root or value.startswith(root + "/"):
            value = str(project_root()) + value[len(root):]
            break
    return portable(value)


def main(argv: list[str]) -> int:
    root = project_root()
    files = [Path(a) for a in argv] or [root / f for f in subprocess.run(
        ["git", "ls-files", "results/*.json", "results/**/*.json"], cwd=root, capture_output=True, text=True,
        check=True).stdout.split()]
    old_roots = [str(root)]
    changed = 0
    for f in files:
        text = f.read_text()
        if '"/' not in text:
            continue
        data = json.loads(text)
        new = _fix(data, old_roots)
        if new != data:
            f.write_text(json.dumps(new, indent=2, sort_keys=False) + "\n")
            changed += 1
    print(f"{changed} file(s) rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
