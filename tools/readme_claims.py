"""The README's claims table (:mod:`cpnas.claims`) from the finished runs.

    python tools/readme_claims.py [--scale S]            # print it
    python tools/readme_claims.py [--scale S] --write    # replace it in README.md, between its markers
    python tools/readme_claims.py [--scale S] --check    # exit 1 if README.md's table is not the runs' table
"""

import argparse
import sys
from pathlib import Path

from cpnas.claims import collect, markdown, readme_table, splice
from cpnas.config import SCALES
from cpnas.errors import CpnasError

README = Path(__file__).resolve().parents[1] / "README.md"

if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python tools/readme_claims.py", description=__doc__.split("\n")[0])
    p.add_argument("--scale", default="cpu", choices=SCALES)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="replace the table in README.md")
    mode.add_argument("--check", action="store_true", help="exit 1 if README.md's table differs from the runs'")
    args = p.parse_args()
    try:
        table = markdown(collect(args.scale))
        if args.write:
            README.write_text(splice(README.read_text(encoding="utf-8"), table), encoding="utf-8")
        elif args.check:
            if readme_table(README.read_text(encoding="utf-8")) != table:
                sys.exit("README.md's claims table is not the one the finished runs give: "
                         "run python tools/readme_claims.py --write")
            print("README.md's claims table matches the finished runs")
        else:
            print(table)
    except CpnasError as e:
        sys.exit(f"error: {e}")
