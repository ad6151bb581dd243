"""``make bench``: speed measured side by side in one run, reported as ratios.

Each section is a module of its own; this one runs them, writes the results and holds the CLI:

(a) training throughput of the paper's search network, 1-bit Child vs 32-bit Parent, and
    (d) of the ``cpu``-recipe evaluation network: :mod:`cpnas.stepbench`;
(b) one search epoch of CP-NAS vs one of PC-DARTS on the same images, projected to the
    paper's schedules, i.e. the paper's "30 % faster than PC-DARTS" (§3.2) checked on this
    machine: :mod:`cpnas.searchbench`;
(c) the exact CPU rewrites vs the plain PyTorch forms: :mod:`cpnas.kernelbench`;
(e) 1-bit inference, packed XNOR-popcount: :mod:`cpnas.deploy.report`;
(f) ``--data-parallel on|only`` (on in ``make bench``): training throughput of ``cpnas train`` at a
    smoke size on synthetic data in one process vs two gloo processes under torchrun
    (:mod:`cpnas.distributed`), same global batch, one thread each, as a ratio. On a
    2-core CPU that ratio need not exceed 1: it measures the overhead of the
    all-reduces as much as the split work; on GPUs the same command scales out;
(g) ``torch.compile`` vs eager: :mod:`cpnas.compilebench`.

Results go to ``<out>/bench.json`` and ``<out>/bench.md``. Timings are medians of
repeated steps after warm-up; the machine, thread count and torch version are
recorded with them. Run ``python -m cpnas.bench --help`` for the options.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from cpnas import dispatch, kernelbench, searchbench, stepbench
from cpnas.io import write_json, write_text
from cpnas.paths import portable
from cpnas.runs.files import HISTORY
from cpnas.timing import load_average as _load_avg

log = logging.getLogger(__name__)


def markdown(res: dict[str, Any]) -> str:
    lines = [
        f"# cpnas benchmark ({res['date']}, torch {res['torch']}, {res['threads']} threads)",
        "",
        f"Load average (1/5/15 min) at the start: {res.get('load_avg_start')}, at the end: "
        f"{res.get('load_avg_end')} ({res['threads']} threads of {os.cpu_count()} cores; a load above the "
        f"thread count means other work shared the cores).",
        "",
        f"Machine: {res['machine']}; CPU {res.get('cpu_model', '?')} "
        f"(AVX-512: {'yes' if res.get('avx512') else 'no'}, AVX2: {'yes' if res.get('avx2') else 'no'}).",
        "",
        *stepbench.throughput_markdown(res["throughput"], res.get("throughput_1thread")),
        *searchbench.search_markdown(res["search"]),
    ]
    if res.get("kernels"):
        lines += kernelbench.kernels_markdown(res["kernels"])
    if res.get("dispatch_timings"):
        lines += kernelbench.dispatch_markdown(res["dispatch_timings"])
    if res.get("training"):
        lines += stepbench.training_markdown(res["training"])
    if res.get("deploy"):
        from cpnas.deploy.report import markdown as deploy_markdown

        lines.append(deploy_markdown(res["deploy"]) if "error" not in res["deploy"]
                     else f"## (e) 1-bit inference measured: skipped ({res['deploy']['error']})\n")
    if res.get("compile"):
        from cpnas.compilebench import compile_markdown

        lines += ["", compile_markdown(res["compile"])]
    dp = res.get("data_parallel")
    if dp:
        one = dp["runs"].get(1) or dp["runs"].get("1")
        lines += ["", "## (f) `cpnas train` in 1 vs 2 gloo processes (torchrun), same global batch, one thread each",
                  "", "| processes | images/s (2nd epoch) | vs 1 process |", "|---|---|---|"]
        for n, r in dp["runs"].items():
            lines.append(f"| {n} | {r['images_per_s']:.1f} | {r['images_per_s'] / one['images_per_s']:.2f}× |")
        lines += ["", "On 2 cores the ratio measures the all-reduce overhead as much as the split work."]
    return "\n".join(lines)


def deploy(scale: str = "cpu") -> dict[str, Any]:
    """(e): the packed XNOR-popcount network vs the simulated 1-bit and the 32-bit one (:mod:`cpnas.deploy`)."""
    from cpnas.deploy import report
    from cpnas.errors import CpnasError

    try:
        return report.bench(scale)
    except CpnasError as exc:  # no compiler: the rest of the benchmark still runs
        return {"error": str(exc)}


def run(out: Path, scale: str = "cpu", batch: int = 64, images: int = 512, device: str = "cpu") -> dict[str, Any]:
    dispatch.reset(ignore_disk=True)  # measure every form afresh, side by side in this run
    info = dispatch.cpu_info()
    flags = set(info["flags"].split())
    res = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.machine()} {platform.processor()}".strip(),
           "cpu_model": info["model"], "avx2": "avx2" in flags, "avx512": "avx512f" in flags,
           "device": device, "threads": torch.get_num_threads(), "torch": torch.__version__,
           "dispatch_cache": portable(dispatch.cache_path()), "forced_forms": dispatch.forced(),
           "load_avg_start": _load_avg()}
    res["kernels"] = kernelbench.kernels(device=device) if device == "cpu" else None
    res["throughput"] = stepbench.throughput(batch=batch, device=device)
    if device == "cpu" and torch.get_num_threads() > 1:
        res["throughput_1thread"] = stepbench.throughput(batch=batch, device=device, threads=1)
    res["training"] = stepbench.training_throughput(device=device)
    res["search"] = searchbench.search_epochs(scale=scale, images=images, device=device)
    # (e) also times the paper's C = 56 network (about a minute): not at smoke scale, which tests/test_deploy.py covers
    res["deploy"] = deploy(scale) if device == "cpu" and scale != "smoke" else None
    from cpnas.compilebench import compile_section

    # (g) compiles the cpu-scale networks (minutes): not at smoke scale, which tests/test_compile.py covers
    res["compile"] = compile_section() if device == "cpu" and scale != "smoke" else None
    if res["compile"]:
        _compile_headline(res)
    res["load_avg_end"] = _load_avg()
    res["kernel_forms"] = dispatch.chosen()
    res["dispatch_timings"] = dispatch.timings()
    write_json(out / "bench.json", res)
    write_text(out / "bench.md", markdown(res))
    return res


def _compile_headline(res: dict[str, Any]) -> None:
    """(g)'s ratios at one thread (how every ``cpu`` run trains) as ``throughput.*`` keys of ``bench.json``."""
    r = res["compile"]["runs"][0]
    a = res["throughput"]
    a["compiled_over_eager_train"] = r["compiled_over_eager_train"]
    a["compiled_binary_over_real_step_time"] = r["compiled_binary_over_real_step_time"]
    if "compiled_over_eager_search" in r:
        a["compiled_over_eager_search"] = r["compiled_over_eager_search"]
    a["compile_threads"] = r["threads"]
    a["achieved_gflops"] = {"train": r["train"]["gflops"]}
    if "search" in r:
        a["achieved_gflops"]["search"] = r["search"]["gflops"]
    a["matmul_peak_gflops"] = r["matmul_peak_gflops"]


DATA_PARALLEL_SET = {"cifar.layers": 3, "cifar.channels_small": 8, "cifar.image_size": 16, "cifar.batch_size": 32,
                     "cifar.epochs": 2, "cifar.train_fraction": 1.0, "cifar.test_fraction": 1.0,
                     "data.synthetic_train": 512, "data.synthetic_test": 32}
"""(f)'s training: 16 steps of 32 images per epoch; the second epoch is timed (the first warms up)."""


def data_parallel(work: Path, procs: tuple[int, ...] = (1, 2)) -> dict[str, Any]:
    """(f) Images/s of the second epoch of one ``cpnas train`` in 1 and in N gloo processes (torchrun)."""
    import json
    import subprocess
    import sys

    from cpnas.paths import project_root

    genotype = project_root() / "tests" / "data" / "darts_v2.json"
    sets = [a for k, v in DATA_PARALLEL_SET.items() for a in ("--set", f"{k}={v}")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CPNAS_PROGRESS": "0"}
    out: dict[str, Any] = {"config": DATA_PARALLEL_SET, "runs": {}}
    for n in procs:
        run_dir = work / f"data-parallel-{n}"
        launcher = [sys.executable, "-m", "cpnas"] if n == 1 else [
            sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}", "-m", "cpnas"]
        if run_dir.exists():
            import shutil

            shutil.rmtree(run_dir)
        subprocess.run([*launcher, "-q", "train", "--genotype", str(genotype), "--scale", "smoke", "--dataset",
                        "synthetic", "--device", "cpu", "--loss", "ce", "--out", str(run_dir), *sets],
                       env=env, check=True, capture_output=True)
        history = json.loads((run_dir / HISTORY).read_text())
        images = DATA_PARALLEL_SET["data.synthetic_train"]
        out["runs"][n] = {"seconds": history[-1]["seconds"], "images_per_s": images / history[-1]["seconds"]}
    base = out["runs"][procs[0]]["images_per_s"]
    out["speedup"] = {n: r["images_per_s"] / base for n, r in out["runs"].items()}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m cpnas.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("results/bench"))
    p.add_argument("--scale", default="cpu", help="scale of the search-epoch comparison (default: cpu)")
    p.add_argument("--batch", type=int, default=64, help="batch of the throughput measurement (default: 64)")
    p.add_argument("--images", type=int, default=512, help="images per search epoch in (b) (default: 512)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--data-parallel", default="off", choices=("off", "on", "only"),
                   help="(f) 1 vs 2 gloo processes under torchrun: off (default), on, or only this section")
    p.add_argument("--profile", action="store_true",
                   help="only profile (a)'s step per net at one thread (torch.profiler): writes profile.{json,md}")
    p.add_argument("--compile-only", action="store_true",
                   help="only (g), torch.compile vs eager side by side: writes bench_compile.{json,md}")
    p.add_argument("--threads", default="1,2", help="thread counts of --compile-only (default: 1,2)")
    p.add_argument("--no-search", action="store_true", help="--compile-only without the search step")
    p.add_argument("--equivalence", metavar="SCALE",
                   help="only train 1-bit DARTS_V2 eager and compiled at seeds 0-2 at SCALE and compare top-1: "
                        "writes <out>/equivalence.json")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from cpnas.compilebench import compile_markdown, compile_section, equivalence

    if args.equivalence:
        eq = equivalence(args.out, args.equivalence)
        print(json.dumps({k: v for k, v in eq.items() if k != "runs"}, indent=1))
        return 0
    if args.compile_only:
        res = compile_section(tuple(int(t) for t in args.threads.split(",")), search=not args.no_search)
        res["date"], res["cpu_model"], res["torch"] = time.strftime("%Y-%m-%d %H:%M"), dispatch.cpu_info()["model"], \
            torch.__version__
        write_json(args.out / "bench_compile.json", res)
        write_text(args.out / "bench_compile.md", compile_markdown(res))
        print(compile_markdown(res))
        return 0
    if args.profile:
        prof = stepbench.operator_times(threads=1, batch=args.batch)
        write_json(args.out / "profile.json", prof)
        write_text(args.out / "profile.md", stepbench.operator_times_markdown(prof))
        print(stepbench.operator_times_markdown(prof))
        return 0
    if args.data_parallel == "only":
        res = {"date": time.strftime("%Y-%m-%d %H:%M"), "load_avg_start": _load_avg(),
               "data_parallel": data_parallel(args.out), "load_avg_end": _load_avg()}
        write_json(args.out / "bench_data_parallel.json", res)
        print(json.dumps(res, indent=1))
        return 0
    res = run(args.out, args.scale, args.batch, args.images, args.device)
    if args.data_parallel == "on":
        res["data_parallel"] = data_parallel(args.out)
        write_json(args.out / "bench.json", res)
        write_text(args.out / "bench.md", markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
