"""README.md and docs/: short, generated where they hold numbers, complete, and runnable as written."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
sys.path.insert(0, str(ROOT / "tools"))

import gen_docs  # noqa: E402


def pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def prose(text: str) -> str:
    """``text`` without its generated blocks and code blocks (what a person wrote)."""
    text = re.sub(r"<!-- gen:([a-z0-9-]+) -->\n.*?<!-- /gen:\1 -->", "", text, flags=re.DOTALL)
    return re.sub(r"```.*?```", "", text, flags=re.DOTALL)


# --------------------------------------------------------------------------- the README


def test_readme_is_a_front_page_in_the_agreed_order():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == ["## Results at a glance", "## Quick start", "## Python API", "## Where to go next",
                        "## Citing"]
    glance = text.split("## Results at a glance")[1].split("## Quick start")[0]
    assert re.search(r"!\[[^\]]+\]\((figures/[^)]+\.png)\)", glance), "the results need a figure"
    for cmd in ("make reproduce-table1", "make test"):
        assert cmd in text.split("## Quick start")[1].split("## Python API")[0]
    assert "@inproceedings{" in text and "doi" in text


WRITTEN_ELSEWHERE = {"docs/reliability.md", "docs/inference.md"}
"""Pages linked from here that their own change adds (checkpoints and errors; bit-packed inference)."""


def test_every_local_link_of_the_readme_and_docs_exists():
    missing = []
    for page in pages():
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if "://" in target:
                continue
            path = (page.parent / target).resolve()
            if not path.exists() and str(path.relative_to(ROOT)) not in WRITTEN_ELSEWHERE:
                missing.append(f"{page.relative_to(ROOT)} → {target}")
    assert not missing, missing


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of ``page``'s headings (code blocks left out)."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)
    return {gen_docs._anchor(m.group(1).replace("`", "").strip()) for m in re.finditer(r"(?m)^#+ (.+)$", text)}


def test_every_anchor_a_page_links_to_is_a_heading():
    bad = []
    for page in pages():
        for target, fragment in re.findall(r"\]\(([^)#\s]*)#([^)\s]+)\)", page.read_text(encoding="utf-8")):
            linked = (page.parent / target).resolve() if target else page
            if linked.exists() and fragment not in _anchors(linked):
                bad.append(f"{page.relative_to(ROOT)} → {target}#{fragment}")
    assert not bad, bad


def test_no_process_history_or_first_person_in_the_prose():
    """No tracker numbers, work log or first person in what is written by hand; numbers come from blocks."""
    bad = []
    patterns = [r"\bissues? #?\d+", r"\bI (have|had|expect|think|did|measured|ran)\b", r"\b(we|our|us)\b",
                r"\b20\d\d-\d\d-\d\d\b"]
    for page in pages():
        text = prose(page.read_text(encoding="utf-8")) if page != gen_docs.CLI_MD else ""
        for pattern in patterns:
            bad += [f"{page.relative_to(ROOT)}: {m.group(0)!r}" for m in re.finditer(pattern, text, re.IGNORECASE)]
    assert not bad, bad
    for page in pages():  # generated text included: nothing points at the tracker
        assert not re.search(r"\bissue \d+", page.read_text(encoding="utf-8")), page


# --------------------------------------------------------------------------- generated parts


def test_generated_blocks_match_the_committed_results():
    """Every number block of README.md and docs/ is what tools/gen_docs.py renders from the committed files now."""
    assert not gen_docs.stale(cli=False), "stale generated parts: run python tools/gen_docs.py --write"


def test_the_cli_page_is_what_the_parsers_print():
    """docs/cli.md is the --help of every command; argparse's layout differs between Python versions, so the
    page is compared under the version that formatted it."""
    made_by = gen_docs.cli_page_python()
    assert made_by, "docs/cli.md does not say which Python formatted it: run python tools/gen_docs.py --write"
    if made_by != "{}.{}".format(*sys.version_info[:2]):
        pytest.skip(f"docs/cli.md was formatted by Python {made_by}'s argparse")
    assert gen_docs.CLI_MD.read_text(encoding="utf-8") == gen_docs.cli_markdown(), \
        "docs/cli.md is stale: run python tools/gen_docs.py --write"


def test_every_generated_block_is_used_and_every_marker_is_known():
    used = {name for page in gen_docs.marked_files() for name in gen_docs.blocks_in(page.read_text(encoding="utf-8"))}
    assert used == set(gen_docs.BLOCKS), f"unused: {set(gen_docs.BLOCKS) - used}, unknown: {used - set(gen_docs.BLOCKS)}"
    with pytest.raises(KeyError, match="unknown generated block"):
        gen_docs.fill("<!-- gen:nope -->\nx\n<!-- /gen:nope -->\n")


def test_fill_replaces_only_between_the_markers_and_a_missing_table_says_what_computes_it(monkeypatch):
    monkeypatch.setitem(gen_docs.BLOCKS, "t", lambda: "new")
    assert gen_docs.fill("a\n<!-- gen:t -->\nold\n<!-- /gen:t -->\nb\n") == "a\n<!-- gen:t -->\nnew\n<!-- /gen:t -->\nb\n"
    monkeypatch.setattr(gen_docs, "CELL_BENCHMARK", "tables/no_such_table.csv")
    text = gen_docs.cellbench_summary()
    assert "is running" in text and "python -m cpnas.cellbench" in text


def test_cell_benchmark_summary_from_a_table(tmp_path, monkeypatch):
    import csv

    rows = [{"architecture": "darts_v2", "source": "published: DARTS (Liu et al. 2019)", "seed": s, "top1": t}
            for s, t in ((0, 50.0), (1, 52.0), (2, 54.0))]
    rows += [{"architecture": f"uniform-{i:02d}", "source": "uniform", "seed": 0, "top1": 40.0 + i} for i in range(5)]
    path = tmp_path / "cell_benchmark.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    monkeypatch.setattr(gen_docs, "ROOT", tmp_path)
    monkeypatch.setattr(gen_docs, "CELL_BENCHMARK", "cell_benchmark.csv")
    text = gen_docs.cellbench_summary()
    assert "| darts_v2 (DARTS (Liu et al. 2019)) | 52.00 ± 2.00 (n = 3) |" in text
    assert "5 uniform cells of the space, seed 0 | median 42.00" in text and "range 40.00-44.00" in text


def test_the_cli_page_holds_every_command():
    from cpnas.cli import SUBCOMMANDS

    shown = {s for s, _ in gen_docs.CLI_COMMANDS}
    assert {f"cpnas {c}" for c in SUBCOMMANDS} <= shown
    modules = {f"python -m cpnas.{f.stem}" for f in (ROOT / "cpnas").glob("*.py")
               if re.search(r"^def main\(", f.read_text(encoding="utf-8"), re.MULTILINE)}
    assert modules <= shown, f"not on docs/cli.md: {modules - shown}"
    tools = {f"python tools/{f.name}" for f in (ROOT / "tools").glob("*.py")
             if "argparse" in f.read_text(encoding="utf-8")}
    assert tools - shown <= {"python tools/portable_results.py", "python tools/mark_complete.py"}


def test_scales_table_lists_the_fields_on_which_the_scales_differ():
    from cpnas.config import get_config

    table = gen_docs.scales_table()
    assert "`search.T` | 3 | 1 | 1 |" in table  # paper, cpu, smoke
    assert "`search.beta_p`" not in table  # the same at every scale
    assert get_config("paper").search.T == 3


# --------------------------------------------------------------------------- environment variables

_ENV_NAME = re.compile(r"\bCPNAS_[A-Z][A-Z0-9_]*\b")


def test_every_cpnas_environment_variable_the_code_reads_is_documented():
    code = [*(ROOT / "cpnas").rglob("*.py"), *(ROOT / "tools").glob("*.py"), *(ROOT / "tests").glob("*.py"),
            *(ROOT / "notebooks").glob("*.ipynb"), ROOT / "Makefile", ROOT / ".ci" / "run"]
    used = {m for f in code if f.is_file() for m in _ENV_NAME.findall(f.read_text(encoding="utf-8"))}
    documented = set(_ENV_NAME.findall((DOCS / "environment.md").read_text(encoding="utf-8")))
    assert used, "no CPNAS_ variable found in the code"
    assert not used - documented, f"read by the code, missing from docs/environment.md: {sorted(used - documented)}"
    assert not documented - used, f"documented but read nowhere: {sorted(documented - used)}"


# --------------------------------------------------------------------------- runnable as written


def _fresh_copy(dest: Path) -> Path:
    """The files a clone of this checkout holds (tracked and not ignored), copied to ``dest``."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def _env(root: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(root), "CPNAS_PROGRESS": "0", "CPNAS_SCALE": "smoke",
           "OMP_NUM_THREADS": "1"}
    env.pop("CPNAS_HOME", None)
    return env


SKIPPED = {
    "make ": "a make target builds .venv and runs notebooks (make test runs them at smoke)",
    "torchrun ": "needs several processes or GPUs (tests/test_distributed.py runs the gloo path)",
    "pip install": "installs packages",
    ".venv/bin/python -m pytest": "runs tests of this suite (make test runs them)",
    "python -m cpnas.ablation --scale paper": "submits to Slurm",
    "python -m cpnas.ablation --scale smoke --executor submitit-local": "every study at smoke "
                                                                         "(tests/test_parallel_executors.py)",
}
"""Commands of the README and docs/ that the fresh-copy test does not run, by prefix, and why."""


def shell_commands(text: str) -> list[str]:
    """The commands of the ```bash blocks of ``text``: comments dropped, continuation lines joined."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.DOTALL):
        joined = re.sub(r"\s*\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = re.sub(r"(^|\s+)#.*$", "", line).strip()
            if line:
                out.append(line)
    return out


def test_shell_commands_are_parsed_from_bash_blocks():
    text = "x\n```bash\ncpnas a --b 1   # note\n# only a comment\ncpnas c \\\n    --d\n```\n```json\n{}\n```\n"
    assert shell_commands(text) == ["cpnas a --b 1", "cpnas c --d"]


def runnable(command: str) -> list[str] | None:
    """``command`` as an argument list for this interpreter, or None when :data:`SKIPPED` lists it."""
    if any(command.startswith(prefix) for prefix in SKIPPED):
        return None
    argv = shlex.split(command)
    if argv[0] == "cpnas":
        return [sys.executable, "-m", "cpnas", *argv[1:]]
    if argv[0] == "python":
        return [sys.executable, *argv[1:]]
    raise AssertionError(f"a command of the docs is neither run nor listed in SKIPPED: {command!r}")


@pytest.mark.slow
def test_the_commands_of_the_readme_and_docs_run_on_a_fresh_copy(tmp_path):
    """Every command of a ```bash block runs, as written and in page order, in a fresh copy of the checkout
    (the README's commands create the run folders the later ones read)."""
    root = _fresh_copy(tmp_path / "clone")
    ran = []
    for page in pages():
        for command in shell_commands(page.read_text(encoding="utf-8")):
            argv = runnable(command)
            if argv is None:
                continue
            proc = subprocess.run(argv, cwd=root, env=_env(root), capture_output=True, text=True, timeout=1800)
            assert proc.returncode == 0, f"{page.name}: {command}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
            ran.append(command)
    assert any(c.startswith("cpnas eval") for c in ran) and any(c.startswith("cpnas deploy") for c in ran)
    assert (root / "runs" / "t" / "checkpoint.pt").is_file()


@pytest.mark.slow
def test_the_readme_python_example_runs(tmp_path):
    """The README's Python API example, executed as it stands (at smoke, on synthetic images)."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) == 1, "the README holds one Python example"
    code = blocks[0]
    assert all(name in code for name in ("run_search", "train_genotype", "evaluate_run", "deploy_report"))
    assert 8 <= len(code.strip().splitlines()) <= 16
    (tmp_path / "example.py").write_text(code, encoding="utf-8")
    env = {**_env(ROOT), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "True" in proc.stdout.split()  # packed["exact"]: the packed network gives the simulated one's logits
    assert (tmp_path / "runs" / "train" / "metrics.json").is_file()


def test_the_numbers_written_in_the_prose_are_the_codes():
    """The few numbers the pages state in words are the constants the code uses."""
    import inspect

    from cpnas import ablation
    from cpnas import cellbench, distributed, stats
    from cpnas.config import get_config

    results = prose((DOCS / "results.md").read_text(encoding="utf-8"))
    assert f"within {stats.CHANCE_MARGIN:g} points of chance ({ablation.CHANCE_TOP1:g} % on CIFAR-10)" in results
    assert f"from {stats.BOOTSTRAP_MIN_N} seeds a side only" in results
    mde = inspect.signature(stats.minimum_detectable_difference).parameters
    assert f"at {100 * mde['power'].default:g} % power" in results.replace("\n", " ")
    assert mde["alpha"].default == 0.05 and "p < 0.05" in results
    bench = prose((DOCS / "cell-benchmark.md").read_text(encoding="utf-8"))
    cifar = get_config("cpu").cifar
    assert cifar.test_fraction == 1.0 and "tested on the 10,000 CIFAR-10 test images" in bench.replace("\n", " ")
    assert f"trained at {len(cellbench.SEEDS)} seeds as well" in bench.replace("\n", " ")
    env = (DOCS / "environment.md").read_text(encoding="utf-8")
    timeout = re.search(r'TIMEOUT_ENV, "(\d+)"', inspect.getsource(distributed)).group(1)
    assert f"| `{distributed.TIMEOUT_ENV}` | {timeout} (torch's) |" in env
