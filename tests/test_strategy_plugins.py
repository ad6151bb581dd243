"""A strategy is one module plus one registration, and cpnas has no import cycle."""

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


def import_graph(root: Path) -> dict[str, set[str]]:
    """Every ``cpnas`` module's ``cpnas`` imports, top-level or inside functions.

    ``from cpnas import X`` and ``from cpnas.pkg import X`` count as imports of the module
    ``cpnas.X`` / ``cpnas.pkg.X`` when that is a module (else of the package), and relative
    imports are resolved: an import inside a function runs too, so it can close a cycle.
    """
    modules = {".".join(("cpnas", *f.relative_to(root).with_suffix("").parts)).removesuffix(".__init__"): f
               for f in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, f in modules.items():
        package = name if f.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
                if base.startswith("cpnas"):
                    deps |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("cpnas")}
        graph[name] = deps - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a path that ends where it starts, or None."""
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep, path + [dep])
                if found:
                    return found
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [node])
            if found:
                return found
    return None


def test_no_import_cycle_inside_cpnas():
    """Every `cpnas` module's imports (top-level or inside functions) form a DAG."""
    cycle = find_cycle(import_graph(Path(__file__).resolve().parents[1] / "cpnas"))
    assert cycle is None, "import cycle: " + " → ".join(cycle)


def test_the_cycle_check_sees_imports_inside_functions(tmp_path):
    pkg = tmp_path / "cpnas"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from cpnas import sub\n")
    (pkg / "sub" / "__init__.py").write_text("def g():\n    from cpnas.sub.b import h\n")
    (pkg / "sub" / "b.py").write_text("def h():\n    from .. import a\n")
    assert find_cycle(import_graph(pkg)) is not None
