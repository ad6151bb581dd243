"""Add the completion marker (``complete.json``) to searches written before searches wrote one.

A search folder gets the marker only if every file its strategy writes is there:
``config.json``, ``genotype.json``, ``cost.json``, ``history.json`` and the strategy's
artifacts (its ``artifact_files``, e.g. ``indicator.json`` for cpnas/bnas). Usage:
``python tools/mark_complete.py results/`` (any folders; searched recursively).
"""

from __future__ import annotations

import sys
from pathlib import Path

from cpnas.io import read_json, write_json
from cpnas.search import COMPLETE
from cpnas.strategy_base import get_strategy, strategy_names


def main(argv: list[str]) -> int:
    marked = 0
    for root in map(Path, argv or ["results"]):
        for cfg in root.rglob("config.json"):
            out = cfg.parent
            if (out / COMPLETE).exists() or not (out / "genotype.json").exists():
                continue
            strategy = (read_json(cfg).get("run") or {}).get("strategy")
            if strategy not in strategy_names():
                continue  # a training run, or an unknown strategy
            names = ["config.json", "genotype.json", "cost.json", "history.json",
                     *get_strategy(strategy).artifact_files]
            if all((out / n).exists() for n in names):
                write_json(out / COMPLETE, {"files": names, "finished": None,
                                            "note": "marker added after the fact by tools/mark_complete.py"})
                marked += 1
            else:
                print(f"{out}: incomplete ({', '.join(n for n in names if not (out / n).exists())} missing); "
                      f"resume it instead", file=sys.stderr)
    print(f"{marked} search(es) marked complete")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
