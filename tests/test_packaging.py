"""pyproject.toml and environment.yml list the same dependencies with the same pins."""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*?)\s*$")


def split_requirement(req: str) -> tuple[str, str]:
    """``"torch==2.14.1"`` → ``("torch", "==2.14.1")``; names are normalised as in PEP 503."""
    m = _REQ.match(req)
    assert m, f"cannot parse requirement {req!r}"
    name = re.sub(r"[-_.]+", "-", m.group(1)).lower()
    return name, m.group(3).replace(" ", "")


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def pyproject_requirements() -> dict[str, str]:
    """The dependencies and every extra (``make venv`` installs them all), one specifier per name."""
    project = pyproject()["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs += list(extra)
    pairs = [split_requirement(r) for r in reqs]
    out: dict[str, str] = {}
    for name, spec in pairs:
        assert out.setdefault(name, spec) == spec, f"{name} has two specifiers in pyproject.toml"
    assert len(set(n for n, _ in pairs[:len(project["dependencies"])])) == len(project["dependencies"]), \
        "duplicate dependencies in pyproject.toml"
    return out


def environment_pip_requirements() -> dict[str, str]:
    """The entries of the ``- pip:`` block of environment.yml (a small line parser, no PyYAML)."""
    lines = (ROOT / "environment.yml").read_text(encoding="utf-8").splitlines()
    reqs, pip_indent = [], None
    for line in lines:
        text = line.split("#", 1)[0].rstrip()
        if not text.strip():
            continue
        indent = len(text) - len(text.lstrip())
        if pip_indent is None:
            if text.strip() == "- pip:":
                pip_indent = indent
            continue
        if indent <= pip_indent:
            break  # the block ended
        assert text.strip().startswith("- "), f"unexpected line in the pip block: {line!r}"
        reqs.append(text.strip()[2:].strip().strip("'\""))
    assert pip_indent is not None, "environment.yml has no '- pip:' block"
    pairs = [split_requirement(r) for r in reqs]
    names = [n for n, _ in pairs]
    assert len(names) == len(set(names)), f"duplicate requirements in environment.yml: {names}"
    return dict(pairs)


def test_requirement_parser():
    assert split_requirement("torch==2.14.1") == ("torch", "==2.14.1")
    assert split_requirement("Jupyter_Lab >= 4.0") == ("jupyter-lab", ">=4.0")
    assert split_requirement("nbval") == ("nbval", "")


def test_pyproject_and_environment_list_the_same_pins():
    py, env = pyproject_requirements(), environment_pip_requirements()
    assert py, "no dependencies found in pyproject.toml"
    only_py = sorted(set(py) - set(env))
    only_env = sorted(set(env) - set(py))
    assert not only_py, f"in pyproject.toml but not environment.yml: {only_py}"
    assert not only_env, f"in environment.yml but not pyproject.toml: {only_env}"
    differ = {n: (py[n], env[n]) for n in py if py[n] != env[n]}
    assert not differ, f"version specifiers differ (pyproject, environment): {differ}"


def test_torch_and_torchvision_are_pinned():
    py = pyproject_requirements()
    assert py["torch"] == "==2.14.1"
    assert py["torchvision"] == "==0.29.1"
    for name, spec in py.items():
        assert spec, f"{name} has no version specifier"


def test_environment_has_python_and_dot():
    text = (ROOT / "environment.yml").read_text(encoding="utf-8")
    m = re.search(r"^\s*-\s*python\s*=\s*(\d+)\.(\d+)", text, re.MULTILINE)
    assert m, "environment.yml should pin python"
    required = re.match(r">=\s*(\d+)\.(\d+)", pyproject()["project"]["requires-python"])
    assert (int(m.group(1)), int(m.group(2))) >= (int(required.group(1)), int(required.group(2)))
    assert re.search(r"^\s*-\s*graphviz\b", text.split("- pip:")[0], re.MULTILINE), \
        "the conda 'graphviz' package provides the dot program used to draw cells"


def test_installed_versions_satisfy_the_pins():
    specifiers = pytest.importorskip("packaging.specifiers")
    from importlib.metadata import PackageNotFoundError, version

    bad = {}
    for name, spec in pyproject_requirements().items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            bad[name] = "not installed"
            continue
        # local version labels (2.14.1+cpu) are ignored by '==' specifiers, as pip does
        if not specifiers.SpecifierSet(spec).contains(installed.split("+")[0], prereleases=True):
            bad[name] = f"{installed} does not satisfy {spec}"
    assert not bad, f"the environment does not match pyproject.toml: {bad}"


def test_console_script_resolves():
    target = pyproject()["project"]["scripts"]["cpnas"]
    module, _, attr = target.partition(":")
    assert callable(getattr(importlib.import_module(module), attr))


def test_committed_run_json_holds_no_absolute_path():
    """Run metadata stores paths relative to the project root (cpnas.paths.portable), not the writer's."""
    import json
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        files = subprocess.run(["git", "ls-files", "results"], cwd=root, capture_output=True, text=True,
                               check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    files = [f for f in files if f.endswith(".json")]
    assert files, "no committed run JSON found"

    def absolute(obj, where):
        if isinstance(obj, dict):
            for k, v in obj.items():
                yield from absolute(v, f"{where}.{k}")
        elif isinstance(obj, list):
            for i, v in enumerate(obj):
                yield from absolute(v, f"{where}[{i}]")
        elif isinstance(obj, str) and (obj.startswith("/") or obj[1:3] == ":\\"):
            yield f"{where} = {obj}"

    bad = [hit for f in files for hit in absolute(json.loads((root / f).read_text()), f)]
    assert not bad, bad[:5]


def test_portable_paths_are_relative_to_the_project_root():
    from cpnas.paths import portable, project_root

    assert portable(project_root() / "results" / "x.json") == str(Path("results") / "x.json")
    assert not portable(project_root().parent / "shared" / "data").startswith("/")
    assert portable(None) is None


def test_license_file_matches_the_spdx_string():
    license_ = pyproject()["project"]["license"]
    assert isinstance(license_, str), "write the license as an SPDX string (PEP 639), not a table"
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith(f"{license_} License")
    assert pyproject()["project"]["requires-python"] == ">=3.11"  # the tests import tomllib


def test_committed_notebooks_show_no_absolute_path():
    """Executed notebooks display paths relative to the project root (cpnas.paths.Saved, portable)."""
    hits = []
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        text = nb.read_text(encoding="utf-8")
        hits += [f"{nb.name}: {m.group(0)}" for m in re.finditer(r"PosixPath\('/[^']*'\)", text)]
        hits += [f"{nb.name}: {m.group(0)}" for m in re.finditer(r"'dataset': '/[^']*'", text)]
    assert not hits, hits[:5]


def test_git_commit_marks_code_changes_dirty_but_not_the_artifacts_the_pipeline_writes(tmp_path, monkeypatch):
    """``make reproduce`` rewrites notebooks/, tables/ and figures/ as it goes; only a code change is dirty."""
    import shutil
    import subprocess

    from cpnas.paths import git_commit

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    for name in ("cpnas/a.py", "notebooks/n.ipynb", "tables/t.csv", "figures/f.png", "results/r.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("0\n")
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "."], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=tmp_path, check=True)
    monkeypatch.setenv("CPNAS_HOME", str(tmp_path))
    head = git_commit()
    assert head is not None and len(head) == 40
    for name in ("notebooks/n.ipynb", "tables/t.csv", "figures/f.png", "results/r.json"):
        (tmp_path / name).write_text("1\n")
    (tmp_path / "untracked.py").write_text("1\n")
    assert git_commit() == head
    (tmp_path / "cpnas/a.py").write_text("1\n")
    assert git_commit() == f"{head}+dirty"


def test_run_info_names_the_committed_runs_not_the_clock_nor_the_code(tmp_path, monkeypatch):
    """What atop each notebook says where its numbers come from: the last commit of results/<scale>, flagged when a
    finished run there is not committed; re-executing from the same runs after a code commit shows the same."""
    import shutil
    import subprocess

    from cpnas.paths import run_info

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    monkeypatch.setenv("CPNAS_HOME", str(tmp_path))
    (tmp_path / ".gitignore").write_text("results/\n")
    (tmp_path / "cpnas").mkdir()
    (tmp_path / "cpnas/a.py").write_text("0\n")
    run = tmp_path / "results/cpu/train/a/seed0"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text("{}\n")
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "-f", "."], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "runs"], cwd=tmp_path, check=True)
    runs = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True,
                          check=True).stdout.strip()
    info = run_info("cpu")
    assert info["runs"] == "results/cpu" and info["runs_commit"] == runs and info["runs_date"]
    assert not {"date", "git_commit"} & set(info)
    (tmp_path / "cpnas/a.py").write_text("1\n")
    subprocess.run([*git, "commit", "-qam", "code"], cwd=tmp_path, check=True)
    unfinished = tmp_path / "results/cpu/train/b/seed0"
    unfinished.mkdir(parents=True)
    (unfinished / "config.json").write_text("{}\n")  # a run in progress changes no table yet
    assert run_info("cpu") == info
    (unfinished / "metrics.json").write_text("{}\n")
    assert run_info("cpu")["runs_commit"] == f"{runs}+uncommitted"
    assert run_info("smoke")["runs_commit"] is None


def test_committed_table3_was_made_from_the_committed_cpu_genotype():
    """tables/table3.csv's CP-NAS rows are those of the genotype 02 committed (a stale 06 once showed an
    earlier search's cell)."""
    import csv

    from cpnas.config import get_config
    from cpnas.efficiency import profile_genotype
    from cpnas.tables import default_genotype_path, resolve_genotype

    genotype_path = default_genotype_path("cpu")
    table = ROOT / "tables" / "table3.csv"
    if not (genotype_path.is_file() and table.is_file()):
        pytest.skip("no committed cpu genotype or Table 3")
    rows = {(r["architecture"], r["source"]): r for r in csv.DictReader(table.open(encoding="utf-8"))}
    ours = profile_genotype(resolve_genotype(genotype_path), size="small", config=get_config("paper")).summary()
    row = rows[("CP-NAS (Small)", "ours")]
    assert float(row["params (M)"]) == pytest.approx(ours["params"] / 1e6, abs=1e-3)
    assert float(row["FLOPs (M)"]) == pytest.approx(ours["flops_m"], abs=1e-2)


# --------------------------------------------------------------------------- packaging conventions

NOTEBOOK_TOOLS = ("papermill", "jupyterlab", "nbformat", "ipykernel")


def test_a_plain_install_needs_no_notebook_tools_and_make_installs_every_extra():
    project = pyproject()["project"]
    base = {split_requirement(r)[0] for r in project["dependencies"]}
    assert not base & set(NOTEBOOK_TOOLS), f"pip install . would pull {sorted(base & set(NOTEBOOK_TOOLS))}"
    extras = project["optional-dependencies"]
    assert set(NOTEBOOK_TOOLS) <= {split_requirement(r)[0] for r in extras["notebooks"]}
    assert {"pytest", "nbval"} <= {split_requirement(r)[0] for r in extras["test"]}
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    m = re.search(r'pip install --quiet -e "\.\[([a-z,]+)\]"', makefile)
    assert m and set(m.group(1).split(",")) == set(extras), "make venv installs every extra"
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_library_imports_no_notebook_tool():
    """cpnas/ itself never imports Papermill, nbformat, ipykernel or JupyterLab (they are an extra)."""
    hits = []
    for f in (ROOT / "cpnas").rglob("*.py"):
        for m in re.finditer(r"^\s*(?:import|from)\s+(\w+)", f.read_text(encoding="utf-8"), re.MULTILINE):
            if m.group(1) in NOTEBOOK_TOOLS + ("jupyter", "nbclient"):
                hits.append(f"{f.relative_to(ROOT)}: {m.group(0).strip()}")
    assert not hits, hits


def test_pyproject_metadata():
    project = pyproject()["project"]
    assert project["authors"] and all(a.get("name") for a in project["authors"])
    assert len(project["keywords"]) >= 5
    classifiers = project["classifiers"]
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert any(c.startswith("Topic :: Scientific/Engineering") for c in classifiers)
    assert not any(c.startswith("License ::") for c in classifiers), "PEP 639: the license is the SPDX string"
    assert all(u.startswith("https://") for u in project["urls"].values())


def _cff_field(text: str, key: str, indent: int = 0) -> str | None:
    m = re.search(rf"^{' ' * indent}{key}:\s*(.+)$", text, re.MULTILINE)
    return m.group(1).strip().strip('"') if m else None


def test_citation_cff_cites_the_software_with_the_paper_preferred():
    text = (ROOT / "CITATION.cff").read_text(encoding="utf-8")
    assert _cff_field(text, "cff-version") == "1.2.0"
    assert _cff_field(text, "type") == "software"
    assert _cff_field(text, "version") == pyproject()["project"]["version"]
    assert _cff_field(text, "license") == pyproject()["project"]["license"]
    preferred = text.split("preferred-citation:")[1]
    doi = _cff_field(preferred, "doi", 2)
    assert doi and doi in (ROOT / "README.md").read_text(encoding="utf-8"), "README's BibTeX cites the same DOI"
    assert "CP-NAS" in _cff_field(preferred, "title", 2)
    assert len(re.findall(r"family-names:", preferred)) == 7


def _make_targets() -> list[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return [m.group(1) for m in re.finditer(r"^([a-z][a-z0-9-]*):(?!=)", text, re.MULTILINE)]


def test_make_help_lists_every_target():
    import shutil
    import subprocess

    targets = _make_targets()
    assert {"help", "venv", "test", "clean", "bench", "reproduce", "reproduce-table1"} <= set(targets)
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in targets:
        assert re.search(rf"^{target}:.*## \S", text, re.MULTILINE), f"make target {target!r} has no ## description"
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    listed = [line.split()[0] for line in out.splitlines()[1:] if line.strip()]
    assert listed == targets


def test_results_of_an_installed_package_go_under_cpnas_home(tmp_path, monkeypatch):
    """A non-editable install has no checkout above it: CPNAS_HOME (docs/environment.md) says where runs go."""
    from cpnas.paths import artifact_dir, project_root, results_dir

    monkeypatch.setenv("CPNAS_HOME", str(tmp_path))
    assert project_root() == tmp_path.resolve()
    assert results_dir("cpu") == tmp_path.resolve() / "results" / "cpu"
    assert artifact_dir("tables", "smoke") == tmp_path.resolve() / "results" / "smoke" / "tables"
    assert "CPNAS_HOME" in (ROOT / "docs" / "environment.md").read_text(encoding="utf-8")
