"""The README's claims table (:mod:`cpnas.claims`) from the finished runs.

    python tools/readme_claims.py [SCALE]            # print it
    python tools/readme_claims.py [SCALE] --write    # replace it in README.md, between its markers
"""

import sys
from pathlib import Path

from cpnas.claims import collect, markdown

START, END = "<!-- claims:start -->", "<!-- claims:end -->"


def splice(readme: str, table: str) -> str:
    """``readme`` with the text between :data:`START` and :data:`END` replaced by ``table``."""
    if readme.count(START) != 1 or readme.count(END) != 1:
        raise SystemExit(f"README.md needs exactly one {START} and one {END}")
    head, rest = readme.split(START)
    _, tail = rest.split(END)
    return f"{head}{START}\n{table}\n{END}{tail}"


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--write"]
    table = markdown(collect(args[0] if args else "cpu"))
    if "--write" in sys.argv:
        path = Path(__file__).resolve().parents[1] / "README.md"
        path.write_text(splice(path.read_text(), table))
    else:
        print(table)
