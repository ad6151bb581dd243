"""A strategy is one module plus one registration (issue 13 A1), and cpnas has no import cycle."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from cpnas.genotype import DARTS_V2
from cpnas.strategy_base import STRATEGIES, Strategy, register


class Toy(Strategy):
    """Two epochs that do nothing, then DARTS_V2."""

    name = "toy"
    label = "Toy!"
    method = "Toy method"

    @classmethod
    def plan(cls, cfg):
        return [{"epoch": 0}, {"epoch": 1}], [{"phase": "toy", "epochs": 2}]

    def run_epoch(self, epoch):
        return {"epoch": epoch}

    def genotype(self):
        return DARTS_V2


@pytest.fixture
def toy():
    register(Toy)
    yield Toy
    STRATEGIES.pop("toy", None)


def test_a_registered_toy_strategy_runs_through_search_dry_run_and_labels(toy, tmp_path, capsys):
    from cpnas.cli import main
    from cpnas.plots_ablation import _label
    from cpnas.tables import search_method

    assert main(["search", "--strategy", "toy", "--scale", "smoke", "--dry-run"]) == 0
    assert "search epochs: 2" in capsys.readouterr().out
    out = tmp_path / "toy"
    assert main(["search", "--strategy", "toy", "--scale", "smoke", "--dataset", "synthetic", "--out", str(out),
                 "--device", "cpu"]) == 0
    assert json.loads((out / "history.json").read_text()) == [
        {"epoch": 0, "wall_clock": pytest.approx(0, abs=60)}, {"epoch": 1, "wall_clock": pytest.approx(0, abs=60)}]
    assert (out / "complete.json").is_file()
    assert search_method("toy") == "Toy method" and _label("toy") == "Toy!"


def test_strategy_traits_replace_name_checks():
    from cpnas.errors import CpnasError
    from cpnas.strategy_base import beta_p_of, get_strategy

    assert get_strategy("bnas").fixed_beta_p == 0.0
    assert beta_p_of("bnas", None, 2.0) == 0.0 and beta_p_of("cpnas", None, 2.0) == 2.0
    with pytest.raises(CpnasError, match="fixes β_P = 0"):
        beta_p_of("bnas", 0.5, 2.0)
    assert get_strategy("pcdarts").needs_arch_split and not get_strategy("cpnas").needs_arch_split


def test_no_import_cycle_inside_cpnas():
    """Every `cpnas` module's imports (top-level or lazy) form a DAG."""
    root = Path(__file__).resolve().parents[1] / "cpnas"
    graph: dict[str, set[str]] = {}
    for f in root.rglob("*.py"):
        name = ".".join(("cpnas", *f.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
        deps = set()
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cpnas"):
                deps.add(node.module)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("cpnas")}
        graph[name] = deps - {name}
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for dep in graph.get(node, ()):
            if state.get(dep) == 1:
                pytest.fail("import cycle: " + " → ".join(path[path.index(dep):] + [dep]))
            if dep not in state:
                visit(dep, path + [dep])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])
