"""The committed notebooks stay thin and run at the scale CPNAS_SCALE names (nbval runs them at smoke)."""

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_thin_and_scale_driven(path):
    nb = json.loads(path.read_text())
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert not any(re.search(r"^\s*(def|class)\s", src, re.M) for src in code), "logic belongs in cpnas/"
    tags = [c.get("metadata", {}).get("tags", []) for c in nb["cells"]]
    # an injected papermill cell would pin SCALE and make `make test` run the notebook at that scale
    assert not any("injected-parameters" in t for t in tags)
    params = [src for src, t in zip(["".join(c["source"]) for c in nb["cells"]], tags) if "parameters" in t]
    assert len(params) == 1 and 'os.environ.get("CPNAS_SCALE", "cpu")' in params[0]
