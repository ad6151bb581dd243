"""Execute some cells of a notebook in place, keeping the other cells' committed outputs.

``python tools/execute_cells.py notebooks/03_eval.ipynb --tag recipe-proxy`` runs the notebook's
first ``--setup`` code cells (imports, SCALE) and then every code cell tagged ``--tag``, in
one kernel, and writes their new outputs into the notebook. Use it when a section's cached
runs changed but the rest of the notebook would recompute work that belongs to another step
(e.g. 03's Table 1 cells retrain at a new recipe). Papermill runs whole notebooks;
this runs a section. The notebook stays the source: nothing here writes cell code.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python tools/execute_cells.py", description=__doc__.split("\n\n")[0])
    p.add_argument("notebook", type=Path)
    p.add_argument("--tag", required=True, help="execute the code cells carrying this tag")
    p.add_argument("--setup", type=int, default=2, help="leading code cells to run first (default: 2)")
    p.add_argument("--timeout", type=int, default=1200, help="seconds per cell (default: 1200)")
    args = p.parse_args(argv)
    if not args.notebook.is_file():
        p.error(f"{args.notebook}: no such notebook")
    nb = nbformat.read(args.notebook, 4)
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    setup = code[:args.setup]
    tagged = [i for i in code if args.tag in nb.cells[i].metadata.get("tags", []) and i not in setup]
    if not tagged:
        p.error(f"no code cell of {args.notebook} is tagged {args.tag!r}")
    sub = copy.deepcopy(nb)
    sub.cells = [copy.deepcopy(nb.cells[i]) for i in setup + tagged]
    NotebookClient(sub, timeout=args.timeout, kernel_name="python3", record_timing=False,  # no clock in outputs
                   resources={"metadata": {"path": str(args.notebook.parent)}}).execute(env=dict(os.environ))
    for i, cell in zip(setup + tagged, sub.cells):
        if i in tagged:
            nb.cells[i].outputs = cell.outputs
            nb.cells[i].execution_count = cell.execution_count
    nbformat.write(nb, args.notebook)
    print(f"{args.notebook}: executed {len(tagged)} cell(s) tagged {args.tag!r} after {len(setup)} setup cell(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
