"""Print the README's claims table (cpnas.claims) from the finished runs: ``python tools/readme_claims.py [SCALE]``."""

import sys

from cpnas.claims import collect, markdown

if __name__ == "__main__":
    print(markdown(collect(sys.argv[1] if len(sys.argv) > 1 else "cpu")))
