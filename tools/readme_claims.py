"""The claims table (:mod:`cpnas.claims`) from the finished runs; the generated parts of the docs.

    python tools/readme_claims.py [--scale S]   # print the claims table of the runs at scale S
    python tools/readme_claims.py --write       # rewrite every generated part of README.md and docs/
    python tools/readme_claims.py --check       # exit 1 if one is stale (a test does this)

``--write`` and ``--check`` are those of ``tools/gen_docs.py``, which renders the README's results,
the claims table of docs/results.md and every other generated block.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_docs import main as gen_docs_main  # noqa: E402

from cpnas.claims import collect, markdown  # noqa: E402
from cpnas.presets import SCALES  # noqa: E402
from cpnas.errors import exit_status  # noqa: E402

if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python tools/readme_claims.py", description=__doc__.split("\n")[0])
    p.add_argument("--scale", default="cpu", choices=SCALES, help="scale of the runs to print (default: cpu)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite every generated part of README.md and docs/")
    mode.add_argument("--check", action="store_true", help="exit 1 if a generated part is stale")
    args = p.parse_args()
    if args.write or args.check:
        sys.exit(gen_docs_main(["--write"] if args.write else ["--check"]))
    sys.exit(exit_status(p.prog, lambda: print(markdown(collect(args.scale)))))
