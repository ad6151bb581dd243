"""A strategy is one module plus one registration, and cpnas has no import cycle."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import dataclasses
from dataclasses import dataclass

from cpnas.config import _f, register_section, unregister_section
from cpnas.genotype import DARTS_V2
from cpnas.strategy_base import STRATEGIES, Strategy, register, strategy_names


@dataclass(frozen=True)
class ToySettings:
    """The toy strategy's own configuration section."""

    toy_epochs: int = _f(7, "the toy's own epoch count", size=True, ge=1)


class Toy(Strategy):
    """``search.toy_epochs`` epochs that do nothing, then DARTS_V2."""

    name = "toy"
    label = "Toy!"
    title = "The Toy"
    method = "Toy method"
    settings = ToySettings
    artifact_files = ("toy.json",)

    @classmethod
    def plan(cls, cfg):
        epochs = cfg.section(ToySettings).toy_epochs
        return [{"epoch": e} for e in range(epochs)], [{"phase": "toy", "epochs": epochs}]

    @classmethod
    def search_summary(cls, out):
        return {"own_search_indicator": 0.5}

    def run_epoch(self, epoch):
        return {"epoch": epoch}

    def genotype(self):
        return DARTS_V2

    def artifacts(self):
        return {"toy.json": {"epochs": self.total_epochs}}


@pytest.fixture
def toy():
    register_section(ToySettings, strategy="toy", presets={"smoke": {"toy_epochs": 2}})
    register(Toy)
    yield Toy
    STRATEGIES.pop("toy", None)
    unregister_section(ToySettings)


def test_a_registered_toy_strategy_runs_through_search_dry_run_and_labels(toy, tmp_path, capsys):
    from cpnas.cli import main
    from cpnas.strategy_base import label_of
    from cpnas.tables import search_method

    assert main(["search", "--strategy", "toy", "--scale", "smoke", "--dry-run"]) == 0
    assert "search epochs: 2" in capsys.readouterr().out
    out = tmp_path / "toy"
    assert main(["search", "--strategy", "toy", "--scale", "smoke", "--dataset", "synthetic", "--out", str(out),
                 "--device", "cpu"]) == 0
    assert json.loads((out / "history.json").read_text()) == [
        {"epoch": 0, "wall_clock": pytest.approx(0, abs=60)}, {"epoch": 1, "wall_clock": pytest.approx(0, abs=60)}]
    assert (out / "complete.json").is_file()
    assert search_method("toy") == "Toy method" and label_of("toy") == "Toy!"


def test_a_toy_strategy_runs_through_a_study_a_table_and_a_claims_row(toy, tmp_path, monkeypatch, capsys):
    """No file but this test knows the toy: its settings, schedule, study rows, table and claim rows come from it."""
    from cpnas import ablation
    from cpnas import claims
    from cpnas import stats
    from cpnas.cli import main
    from cpnas.config import get_config
    from cpnas.strategy_base import search_epochs

    # its own config section: a key of search, with its source, set like any other key, printed where it is used
    assert search_epochs("toy", get_config("paper")) == 7 and search_epochs("toy", get_config("smoke")) == 2
    assert search_epochs("toy", get_config("smoke", {"search.toy_epochs": 3})) == 3
    assert get_config("smoke").to_dict()["search"]["toy_epochs"] == 2
    assert main(["config", "--scale", "smoke", "--strategy", "toy"]) == 0
    shown = capsys.readouterr().out
    assert "search.toy_epochs" in shown and "the toy's own epoch count" in shown and "search.pc_epochs" not in shown
    assert main(["config", "--scale", "smoke", "--strategy", "cpnas"]) == 0
    assert "search.toy_epochs" not in capsys.readouterr().out

    # a study: Fig. 6 (right)'s strategy comparison with the toy as one arm, searched and trained at smoke
    monkeypatch.setenv("CPNAS_HOME", str(tmp_path))
    runs = ablation.strategy_runs(seeds=(0, 1), strategies=("toy", "random"))
    from cpnas.runs import run_or_load

    results = [(run, run_or_load(run.spec("smoke", "synthetic"), get_config("smoke"), device="cpu")) for run in runs]
    rows = [ablation.row(run, r.metrics, r.search) for run, r in results]
    toy_rows = [r for r in rows if r["strategy"] == "toy"]
    assert [r["search_epochs"] for r in toy_rows] == [2, 2]
    assert all((run.search_dir("smoke", "synthetic") / "toy.json").is_file() for run in runs if run.strategy == "toy")
    # a table of the study
    table = stats.summarize(rows, "strategy")
    assert set(table["label"]) == {"toy", "random"} and int(table[table["label"] == "toy"]["n"].iloc[0]) == 2
    # the toy as a side of the speed claim, whose projection to the paper's schedule is the toy's own plan
    monkeypatch.setattr(ablation, "SPEED_CLAIM", ("toy", "cpnas"))
    per_epoch = {"toy": [r["search_wall_clock_s"] / r["search_epochs"] / 60 for r in toy_rows]}
    speed = claims.speed_claim(per_epoch, "smoke")
    assert "faster than CP-NAS" in speed["claim"] and "projected to 7 vs 105 epochs" in speed["claim"]
    assert "The Toy:" in speed["ours"] and "(n = 2)" in speed["ours"]


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


@pytest.mark.parametrize("name", strategy_names())
def test_every_strategy_states_its_traits(name):
    """Batch size, supernets and a plan whose summary counts its schedule: what search, the memory check and
    the dry run read of every strategy."""
    import torch

    from cpnas.config import get_config
    from cpnas.strategy_base import get_strategy

    cls, cfg = get_strategy(name), get_config("smoke")
    assert cls.search_batch_size(cfg) >= 1
    with torch.device("meta"):
        nets = cls.supernets(cfg, 10)
    assert all(sum(p.numel() for p in net.parameters()) > 0 for net in nets)
    schedule, summary = cls.plan(cfg)
    assert len(schedule) == sum(row["epochs"] for row in summary)
    if cls.settings is not None:  # its own section resolves at every scale
        assert dataclasses.is_dataclass(cfg.section(cls.settings))


def test_a_beta_is_searched_by_the_variant_that_fixes_it_else_by_cpnas():
    from cpnas.strategy_base import search_for_beta

    assert search_for_beta(0.0) == ("bnas", None)  # BNAS† is CP-NAS at β_P = 0
    assert search_for_beta(2.0) == ("cpnas", 2.0)
    assert search_for_beta(0.5) == ("cpnas", 0.5)
