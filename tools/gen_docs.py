"""The generated parts of README.md and docs/: every number they show comes from here.

A generated block sits between two markers in a Markdown file::

    <!-- gen:NAME -->
    …what BLOCKS[NAME]() returns…
    <!-- /gen:NAME -->

and ``docs/cli.md`` is generated whole from the argparse parsers. Nothing between
the markers is written by hand: the blocks are rendered from the committed runs,
tables, figures and benchmark files, and from the configuration itself.

    python tools/gen_docs.py            # list the blocks and the files that hold them
    python tools/gen_docs.py --write    # rewrite every block and docs/cli.md
    python tools/gen_docs.py --check    # exit 1 if any of them is stale (a test does this)
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import re
import runpy
import statistics
import sys
import warnings
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CLI_MD = DOCS / "cli.md"
MARKED_FILES = ("README.md", "docs/*.md")
"""The files whose ``<!-- gen:NAME -->`` blocks are filled (docs/cli.md is generated whole)."""

_BLOCK = re.compile(r"(<!-- gen:([a-z0-9-]+) -->\n)(.*?)(<!-- /gen:\2 -->)", re.DOTALL)

CELL_BENCHMARK = "tables/cell_benchmark.csv"
SEARCH_RANKING = "tables/search_ranking.csv"
TIMINGS = "docs/timings.json"


def _rel(path: str) -> Path:
    return ROOT / path


def _running(what: str, command: str | None, table: str) -> str:
    how = f"`{command}` computes it and writes `{table}`" if command else f"it writes `{table}`"
    return f"*{what} is running:* {how}; `python tools/gen_docs.py --write` then fills this section from that table."


# --- results --------------------------------------------------------------------------------------------------


def _cellbench_rows() -> list[dict[str, str]]:
    with _rel(CELL_BENCHMARK).open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f} (n = 1)"
    return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f} (n = {len(values)})"


def cellbench_summary() -> str:
    """Published and uniform cells of the cell benchmark at a glance (seed-0 top-1 over the 10,000 test images)."""
    if not _rel(CELL_BENCHMARK).is_file():
        return _running("The cell benchmark (40 uniform cells, DARTS_V2 and PC-DARTS' cell, each trained at the "
                        "`cpu` budget and tested on the 10,000 CIFAR-10 test images)",
                        "python -m cpnas.cellbench --jobs 2", "tables/cell_benchmark.{csv,md}")
    rows = _cellbench_rows()
    by_arch: dict[str, list[float]] = {}
    for r in rows:
        by_arch.setdefault(r["architecture"], []).append(float(r["top1"]))
    uniform = [float(r["top1"]) for r in rows if r["source"] == "uniform" and int(r["seed"]) == 0]
    lines = ["| cells | top-1 % (10,000 test images) |", "|---|---|"]
    for r in rows:
        if r["source"].startswith("published") and int(r["seed"]) == 0:
            lines.append(f"| {r['architecture']} ({r['source'].removeprefix('published: ')}) | "
                         f"{_mean_std(by_arch[r['architecture']])} |")
    if uniform:
        q = statistics.quantiles(uniform, n=4) if len(uniform) > 1 else [uniform[0]] * 3
        lines.append(f"| {len(uniform)} uniform cells of the space, seed 0 | median {q[1]:.2f}, "
                     f"quartiles {q[0]:.2f}-{q[2]:.2f}, range {min(uniform):.2f}-{max(uniform):.2f} |")
    searched = [r for r in rows if r["source"].startswith("searched") and int(r["seed"]) == 0]
    if searched:
        lines.append(f"| {len(searched)} searched cells, seed 0 | "
                     f"{_mean_std([float(r['top1']) for r in searched])} |")
    return "\n".join(lines)


def search_ranking() -> str:
    """The search-ranking study's table as committed (``tables/search_ranking.md``)."""
    md = _rel("tables/search_ranking.md")
    if not md.is_file():
        return _running("The search-ranking study (does each strategy's supernet rank the benchmark's cells as "
                        "training them does?)", "python -m cpnas.ranking --jobs 2", "tables/search_ranking.{csv,md}")
    return md.read_text(encoding="utf-8").strip()


GLANCE_FIGURES = (
    ("figures/search_ranking.png", "The search ranking: how each search's scores rank the benchmark's cells "
                                   "against their trained top-1"),
    ("figures/cell_benchmark.png", "The cell benchmark: trained top-1 of every cell at the `cpu` budget"),
)
"""The README's figure, the first of these that is committed (else Table 3's)."""


def glance_figure() -> str:
    """The README's figure: the search ranking's or the cell benchmark's once committed, else Table 3's (analytic)."""
    for path, alt in GLANCE_FIGURES:
        if _rel(path).is_file():
            return f"![{alt}]({path})"
    return ("![Table 3: memory and FLOPs of the paper's networks, as printed and as counted by cpnas]"
            "(figures/table3.png)\n\n*Table 3, memory and FLOPs (log scale), the paper's numbers beside ours, "
            "counted from the networks the library builds (`make reproduce-table3`). The search ranking's figure "
            "replaces it once that study is committed.*")


def glance_table() -> str:
    """Results at a glance: the strategy comparison's primary family, Fig. 6 (left)'s β_P family and Table 3
    (exact arithmetic), then the cell benchmark and the search ranking."""
    from cpnas.claims import collect, headline_claims, markdown

    headline = headline_claims()
    rows = [r for r in collect("cpu") if r["claim"] in headline]
    return markdown(rows) + "\n\n" + cellbench_summary() + "\n\n" + ranking_glance()


def ranking_glance() -> str:
    """The search ranking in short (:func:`cpnas.ranking.glance`), from the committed runs."""
    from cpnas.ranking import glance

    return glance("cpu")


def claims_table() -> str:
    """Every claim at `cpu` (:func:`cpnas.claims.collect`) as the committed runs give it, after the search
    budget the ranking study chose (or what that choice waits for)."""
    from cpnas.claims import collect, markdown
    from cpnas.comparison import budget_state

    state = budget_state("cpu")
    head = (f"Search budget: `{state['budget']}` ({state['reason']})." if state["budget"] else
            f"Search budget: not chosen yet ({state['reason']}).")
    return head + "\n\n" + markdown(collect("cpu"))


def cellbench_table() -> str:
    md = _rel("tables/cell_benchmark.md")
    if not md.is_file():
        return cellbench_summary()
    return md.read_text(encoding="utf-8").strip()


_PROCESS_NOTE = re.compile(r"\s*\(issue \d+[^)]*\)")


def _committed_md(path: str) -> Callable[[], str]:
    def render() -> str:
        lines = _rel(path).read_text(encoding="utf-8").strip().splitlines()
        # headings two levels below the page's; a caption's reference to the tracker is process history
        return "\n".join("##" + line if line.startswith("#") else _PROCESS_NOTE.sub("", line) for line in lines)
    render.__doc__ = f"``{path}`` as committed."
    return render


# --- configuration --------------------------------------------------------------------------------------------


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def scales_table() -> str:
    """Every configuration field on which the scales differ, with its value at each scale and its source."""
    from cpnas.config import get_config, iter_fields
    from cpnas.presets import SCALES

    values = {s: {k: (v, meta) for k, v, meta in iter_fields(get_config(s))} for s in SCALES}
    keys = list(values[SCALES[0]])
    lines = ["| field | " + " | ".join(f"`{s}`" for s in SCALES) + " | kind | source (the paper) |",
             "|---|" + "---|" * len(SCALES) + "---|---|"]
    for k in keys:
        row = [values[s][k][0] for s in SCALES]
        if len({repr(v) for v in row}) == 1:
            continue
        meta = values[SCALES[0]][k][1]
        kind = "size" if meta.get("size") else "recipe" if meta.get("recipe") else "—"
        source = str(meta.get("source", "")).replace("|", "\\|")
        lines.append(f"| `{k}` | " + " | ".join(_fmt(v) for v in row) + f" | {kind} | {source} |")
    return "\n".join(lines)


def recipes_table() -> str:
    """The named training recipes (:data:`cpnas.presets.RECIPES`) and the scales that use them."""
    from cpnas.presets import PRESET_RECIPES, RECIPE_SOURCES, RECIPES

    lines = ["| recipe | scales | fields it sets | source |", "|---|---|---|---|"]
    for name, fields in RECIPES.items():
        scales = ", ".join(f"`{s}`" for s, r in PRESET_RECIPES.items() if r == name)
        set_ = ", ".join(f"`{k}={_fmt(v)}`" for k, v in fields.items()) or "none (the paper's §3.1 values)"
        lines.append(f"| `{name}` | {scales} | {set_} | {RECIPE_SOURCES.get(name, '')} |")
    return "\n".join(lines)


# --- benchmarks -----------------------------------------------------------------------------------------------


def bench_results() -> str:
    """``results/bench/bench.md`` (``make bench``) without its per-key list of measured kernel forms."""
    text = _rel("results/bench/bench.md").read_text(encoding="utf-8").strip().splitlines()
    out, skip = [], False
    for line in text:
        if line.startswith("### Forms the dispatch measured"):
            skip = True
            out.append("*(Every kernel form the dispatch measured in this run: `results/bench/bench.md`.)*")
            continue
        if skip and line.startswith("## "):
            skip = False
        if skip:
            continue
        if line.startswith("# "):  # the file's title: when and how it was measured
            out.append(f"*`make bench`: {line[2:].removeprefix('cpnas benchmark').strip()}*")
            continue
        out.append("#" + line if line.startswith("#") else line)  # one level below the page's headings
    return "\n".join(out).strip()


def device_check() -> str:
    """The one GPU check (``tools/device_check.py``), from its raw output ``docs/device-check-h200.json``."""
    d = json.loads(_rel("docs/device-check-h200.json").read_text(encoding="utf-8"))
    t, s, c = d["bench_throughput"], d["bench_search"], d["cifar_train"]
    lines = [f"One {d['device']}, torch {d['torch']}, synthetic inputs, the `paper` sizes.", "",
             "| measurement | result |", "|---|---|",
             f"| search-net training step, C = {t['C']}, {t['layers']} cells, batch {t['batch']} | 1-bit "
             f"{t['binary_step_s']:.3f} s, 32-bit {t['real_step_s']:.3f} s: 1-bit / 32-bit = "
             f"{t['binary_over_real_step_time']:.2f} |",
             f"| one CP-NAS search epoch on {s['images']:,} images (Child + Parent + scoring {s['score_images']}) | "
             f"{s['cpnas_epoch_s']:.1f} s |",
             f"| one PC-DARTS epoch on the same images (warm-up / with α steps) | {s['pcdarts_warmup_epoch_s']:.1f} s "
             f"/ {s['pcdarts_epoch_s']:.1f} s |",
             f"| projected to the paper's schedules (105 vs 15 + 35 epochs) | CP-NAS {s['projected_cpnas_s'] / 3600:.2f} h, "
             f"PC-DARTS {s['projected_pcdarts_s'] / 3600:.2f} h: ratio {s['cpnas_over_pcdarts_total']:.2f} "
             f"(the paper: ≈ 0.70) |",
             f"| CIFAR small network, one epoch of `cpnas train` (C = 56, 10 cells, batch 96) | "
             f"≈ {c['projected_epoch_min']:.1f} min → ≈ {c['projected_600_epochs_h']:.0f} h for 600 epochs |"]
    for r in d["imagenet"]:
        lines.append(f"| ImageNet network (C = 102, {r['image_size']}², batch {r['batch']}), {r['precision']} "
                     f"training step | {r['step_s']:.2f} s, ≈ {r['projected_epoch_h']:.2f} h an epoch, "
                     f"peak {r['peak_mem_gb']:.0f} GB |")
    if d.get("note"):
        lines += ["", f"*{d['note']}*"]
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{h} h {m:02d} min"
    return f"{m} min {s:02d} s" if m else f"{s} s"


def timings() -> str:
    """How long the make targets took, from ``docs/timings.json`` (wall-clock measured end to end)."""
    d = json.loads(_rel(TIMINGS).read_text(encoding="utf-8"))
    lines = ["| command | starting from | wall-clock (measured) |", "|---|---|---|"]
    for r in d["timings"]:
        lines.append(f"| `{r['command']}` | {r['from']} | {_duration(r['seconds'])} |")
    lines += ["", f"*{d['how']}*"]
    return "\n".join(lines)


def thread_hours() -> str:
    """What recomputing every `cpu` study costs in one-thread hours (:func:`cpnas.workload.markdown`)."""
    from cpnas.workload import markdown

    return markdown("cpu")


def compile_equivalence() -> str:
    """The compiled and eager trainings compared (``python -m cpnas.bench --equivalence cpu``)."""
    from cpnas.compilebench import equivalence_markdown

    return equivalence_markdown(json.loads(_rel("results/bench/equivalence/equivalence.json").read_text(encoding="utf-8")))


BLOCKS: dict[str, Callable[[], str]] = {
    "compile-equivalence": compile_equivalence,
    "thread-hours": thread_hours,
    "glance-figure": glance_figure,
    "glance-table": glance_table,
    "timings": timings,
    "claims": claims_table,
    "cellbench": cellbench_table,
    "search-ranking": search_ranking,
    "table1": _committed_md("tables/table1.md"),
    "table2": _committed_md("tables/table2.md"),
    "table3": _committed_md("tables/table3.md"),
    "recipe-sweep": _committed_md("tables/recipe_sweep.md"),
    "proxy-validation": _committed_md("tables/proxy_validation.md"),
    "scales": scales_table,
    "recipes": recipes_table,
    "bench": bench_results,
    "bench-profile": _committed_md("results/bench/profile.md"),
    "device-check": device_check,
}
"""Every generated block, by the name its markers carry."""


# --- the command line -----------------------------------------------------------------------------------------

def _study_modules() -> list[str]:
    """``cpnas/<name>.py`` modules that run as ``python -m cpnas.<name>`` (they define ``main``), and the
    ``cpnas/<name>/`` packages that have a ``__main__.py``."""
    files = [f for f in (ROOT / "cpnas").glob("*.py") if f.stem != "__main__"]
    files += (ROOT / "cpnas").glob("*/__main__.py")
    return sorted(f"cpnas.{f.parent.name}" if f.stem == "__main__" else f"cpnas.{f.stem}" for f in files
                  if f.stem == "__main__" or (re.search(r"^def main\(", f.read_text(encoding="utf-8"), re.MULTILINE)
                                              and "__main__" in f.read_text(encoding="utf-8")))


TOOLS = ("gen_docs.py", "readme_claims.py", "snr_probe.py", "execute_cells.py", "device_check.py")
"""The scripts of tools/ on the page (the two that upgrade old run JSON once are left out)."""

CLI_COMMANDS: tuple[tuple[str, str], ...] = (
    ("cpnas", "cpnas"),
    *((f"cpnas {c}", f"cpnas {c}") for c in ("config", "search", "train", "eval", "profile", "deploy")),
    *((f"python -m {m}", m) for m in _study_modules()),
    *((f"python tools/{t}", f"tools/{t}") for t in TOOLS),
)
"""Each command of docs/cli.md: how it is typed, and the module or script whose parser answers ``--help``."""

HELP_COLUMNS = "100"
"""The terminal width argparse formats the help for (``$COLUMNS``), so the page is the same on every machine."""


def _cpnas_help(words: list[str]) -> str:
    from cpnas.cli import build_parser

    parser = build_parser()
    if words:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[words[0]]
    return parser.format_help()


def help_text(target: str) -> str:
    """``--help`` of one command of :data:`CLI_COMMANDS`, formatted for :data:`HELP_COLUMNS` columns."""
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS
    try:
        if target.split()[0] == "cpnas":
            return _cpnas_help(target.split()[1:])
        buf, argv = io.StringIO(), sys.argv
        sys.argv = [target, "--help"]
        try:
            with contextlib.redirect_stdout(buf), contextlib.suppress(SystemExit), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # runpy: the module was imported before
                if target.endswith(".py"):
                    runpy.run_path(str(ROOT / target), run_name="__main__")
                else:
                    runpy.run_module(target, run_name="__main__", alter_sys=False)
        finally:
            sys.argv = argv
        return buf.getvalue()
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


def cli_markdown() -> str:
    """docs/cli.md: the ``--help`` of every command, as argparse prints it."""
    parts = ["# Command line", "",
             f"<!-- Generated by python tools/gen_docs.py --write from the argparse parsers, formatted by "
             f"Python {_python()}'s argparse; do not edit. -->", "",
             "Every command the project installs or ships, with its `--help` as argparse prints it. Errors caused "
             "by input (a wrong path, an unknown op, scale or config key, a value out of its range) print one line "
             "`cpnas <command>: error: …` and exit with status 2; Ctrl-C and SIGTERM stop a run with a resumable "
             "checkpoint (exit 130).", ""]
    parts += [f"- [`{shown}`](#{_anchor(shown)})" for shown, _ in CLI_COMMANDS]
    for shown, target in CLI_COMMANDS:
        text = help_text(target).rstrip()
        if not text:
            raise RuntimeError(f"{target} printed no --help")
        parts += ["", f"## {shown}", "", "```text", text, "```"]
    return "\n".join(parts) + "\n"


def _python() -> str:
    return "{}.{}".format(*sys.version_info[:2])


def cli_page_python() -> str | None:
    """The Python version whose argparse formatted the committed docs/cli.md (its help layout differs
    between versions)."""
    if not CLI_MD.is_file():
        return None
    m = re.search(r"formatted by Python (\d+\.\d+)'s argparse", CLI_MD.read_text(encoding="utf-8"))
    return m.group(1) if m else None


def _anchor(title: str) -> str:
    """GitHub's heading anchor: lower case, punctuation other than - and _ dropped, spaces to -."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


# --- filling and checking -------------------------------------------------------------------------------------


def marked_files() -> list[Path]:
    files: list[Path] = []
    for pattern in MARKED_FILES:
        files += sorted(ROOT.glob(pattern))
    return [f for f in files if f != CLI_MD]


def fill(text: str, where: str = "") -> str:
    """``text`` with every generated block re-rendered; an unknown block name is an error."""
    def render(m: re.Match) -> str:
        name = m.group(2)
        if name not in BLOCKS:
            raise KeyError(f"{where}: unknown generated block {name!r} (known: {', '.join(BLOCKS)})")
        return f"{m.group(1)}{BLOCKS[name]().strip()}\n{m.group(4)}"
    return _BLOCK.sub(render, text)


def blocks_in(text: str) -> list[str]:
    return [m.group(2) for m in _BLOCK.finditer(text)]


def stale(cli: bool = True) -> list[str]:
    """The files whose generated parts differ from what the committed results give now (relative paths);
    ``cli=False`` leaves docs/cli.md out."""
    out = []
    for f in marked_files():
        text = f.read_text(encoding="utf-8")
        if fill(text, str(f.relative_to(ROOT))) != text:
            out.append(str(f.relative_to(ROOT)))
    if cli and (not CLI_MD.is_file() or CLI_MD.read_text(encoding="utf-8") != cli_markdown()):
        out.append(str(CLI_MD.relative_to(ROOT)))
    return out


def write() -> list[str]:
    changed = []
    for f in marked_files():
        text = f.read_text(encoding="utf-8")
        new = fill(text, str(f.relative_to(ROOT)))
        if new != text:
            f.write_text(new, encoding="utf-8")
            changed.append(str(f.relative_to(ROOT)))
    cli = cli_markdown()
    if not CLI_MD.is_file() or CLI_MD.read_text(encoding="utf-8") != cli:
        CLI_MD.write_text(cli, encoding="utf-8")
        changed.append(str(CLI_MD.relative_to(ROOT)))
    return changed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python tools/gen_docs.py", description=__doc__.split("\n")[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite every generated block and docs/cli.md")
    mode.add_argument("--check", action="store_true", help="exit 1 if a generated block or docs/cli.md is stale")
    args = p.parse_args(argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from cpnas.errors import exit_status

    def work() -> int:
        if args.write:
            changed = write()
            print("rewrote " + ", ".join(changed) if changed else "every generated part is up to date")
        elif args.check:
            bad = stale()
            if bad:
                print("stale generated parts in " + ", ".join(bad) + ": run python tools/gen_docs.py --write",
                      file=sys.stderr)
                return 1
            print("every generated part of README.md and docs/ matches the committed results")
        else:
            for f in marked_files():
                names = blocks_in(f.read_text(encoding="utf-8"))
                if names:
                    print(f"{f.relative_to(ROOT)}: {', '.join(names)}")
            print(f"{CLI_MD.relative_to(ROOT)}: generated whole")
        return 0

    return exit_status(p.prog, work)


if __name__ == "__main__":
    sys.exit(main())
