"""Check the ``paper``-scale code path on a CUDA GPU and time it (run once when a GPU is lent).

    PYTHONPATH=. python3 tools/device_check.py --out DIR [--tiny]

What it runs, all at the paper's sizes on synthetic 32×32 data (no dataset travels
to the GPU machine) unless ``--tiny``:

1. ``make bench``'s sections on CUDA (:mod:`cpnas.stepbench`, :mod:`cpnas.searchbench`): (a) the
   1-bit/32-bit step-time ratio of the paper's search network at the paper's batch 512, (b) one
   CP-NAS search epoch and one PC-DARTS epoch of each kind, projected to the paper's schedules
   (the "30 % faster" claim).
2. One CIFAR training epoch (``cpnas.evaluation.train_genotype``: CP loss,
   auxiliary tower, checkpoint, metrics) of the small network (C = 56, 10 cells,
   batch 96) on a slice of synthetic images, projected to 50,000 images × 600 epochs.
3. Training steps of the ImageNet network (C = 102, 224×224, batch 256) in each
   precision of Table 2, projected to one ImageNet epoch (1,281,167 images).
4. Issue 14 §3: (a) again under each of ``--amp bf16`` and ``--compile`` (:mod:`cpnas.accel`)
   and both: the 1-bit/32-bit step ratio (aim: ≤ 1.3; 1.82 eager on one H200). On a CPU
   (``--tiny``) the options stay off, so the four rows are eager: a test of this script only.

Everything is written to ``DIR/device_check.json`` and printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cpnas  # noqa: F401  (sets the OpenMP policy before torch)
import torch

from cpnas import searchbench, stepbench
from cpnas.config import get_config
from cpnas.evaluation import build_network, train_genotype
from cpnas.genotype import load_genotype
from cpnas.losses import make_loss

ROOT = Path(__file__).resolve().parents[1]
PC_DARTS = load_genotype(ROOT / "tests" / "data" / "pcdarts_cifar.json")
"""PC-DARTS' published CIFAR-10 cell (Xu et al., 2020), a fixed test genotype (read from the tests' copy).

``docs/device-check-h200.json`` was measured by an earlier version of this script that pasted the
cell with two reduction edges changed (1→4 and 0→5 where the published cell has 3→4 and 2→5);
its numbers are of that altered cell (same ops and edge count, so the timings are comparable)."""


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def imagenet_steps(precision: str, batch: int, steps: int, size: int, device: str) -> dict:
    cfg = get_config("paper")
    torch.manual_seed(0)
    model = build_network(PC_DARTS, cfg, dataset="imagenet", precision=precision, num_classes=1000).to(
        device, memory_format=torch.channels_last)
    loss_fn = make_loss("cp" if precision != "real" else "ce", model, num_classes=1000, config=cfg.loss,
                        label_smoothing=cfg.imagenet.label_smoothing, aux_weight=cfg.imagenet.auxiliary_weight)
    t = cfg.imagenet
    opt = torch.optim.SGD(model.parameters(), lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    x = torch.randn(batch, 3, size, size, device=device).to(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,), device=device)
    times = []
    model.train()
    for i in range(steps + 2):
        _sync()
        t0 = time.perf_counter()
        out = model(x)
        loss = loss_fn(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _sync()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    step = statistics.median(times)
    return {"precision": precision, "batch": batch, "image_size": size, "step_s": step,
            "img_per_s": batch / step, "projected_epoch_h": 1_281_167 / batch * step / 3600,
            "loss": float(loss), "peak_mem_gb": torch.cuda.max_memory_allocated() / 2**30
            if torch.cuda.is_available() else None}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--tiny", action="store_true", help="tiny sizes, to test this script on a CPU")
    args = p.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    res: dict = {"torch": torch.__version__, "device": torch.cuda.get_device_name() if device == "cuda" else "cpu"}
    args.out.mkdir(parents=True, exist_ok=True)

    def save():
        (args.out / "device_check.json").write_text(json.dumps(res, indent=2))

    t = time.perf_counter()
    scale = "smoke" if args.tiny else "paper"
    res["bench_throughput"] = stepbench.throughput(batch=8 if args.tiny else 512, device=device)
    res["bench_search"] = searchbench.search_epochs(scale=scale, images=64 if args.tiny else 5000, device=device)
    res["bench_s"] = time.perf_counter() - t
    print(json.dumps({k: res[k] for k in ("bench_throughput", "bench_search")}, indent=1), flush=True)
    save()

    # 2. a CIFAR training epoch through train_genotype (CP loss, aux tower, checkpoint, metrics.json)
    n_train = 96 * (2 if args.tiny else 60)
    over = {"cifar.epochs": 1, "data.synthetic_train": n_train, "data.synthetic_test": 960}
    if args.tiny:
        over.update({"cifar.layers": 5, "cifar.channels_small": 4})
    cfg = get_config("paper", over)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        m = train_genotype(PC_DARTS, cfg, out=Path(tmp) / "run", dataset="synthetic", loss="cp", device=device)
        wall = time.perf_counter() - t
    per_image = m["wall_clock_s"] / n_train  # includes the test pass: an upper bound per image
    res["cifar_train"] = {"train_images": n_train, "wall_clock_s": m["wall_clock_s"], "call_s": wall,
                          "params_m": m["params_m"], "device": m["device"], "top1": m["top1"],
                          "projected_epoch_min": 50_000 * per_image / 60,
                          "projected_600_epochs_h": 600 * 50_000 * per_image / 3600}
    print(json.dumps(res["cifar_train"], indent=1), flush=True)
    save()

    # 3. ImageNet network steps in each precision of Table 2
    res["imagenet"] = []
    for prec in ("real", "binary", "binary*", "binary**"):
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        r = imagenet_steps(prec, batch=4 if args.tiny else 256, steps=2 if args.tiny else 8,
                           size=64 if args.tiny else 224, device=device)
        res["imagenet"].append(r)
        print(json.dumps(r), flush=True)
        save()

    # 4. the 1-bit/32-bit step ratio under bf16 autocast and torch.compile (cpnas.accel)
    from cpnas import accel

    res["acceleration"] = []
    for amp, compile_ in (("off", False), ("bf16", False), ("off", True), ("bf16", True)):
        accel.configure(amp, compile_, device)
        r = stepbench.throughput(batch=8 if args.tiny else 512, device=device)
        row = {"amp": amp, "compile": compile_, "applied": accel.describe(),
               **{k: r[k] for k in ("binary_img_per_s", "real_img_per_s", "binary_over_real_step_time")}}
        res["acceleration"].append(row)
        print(json.dumps(row), flush=True)
        save()
    accel.reset()
    return 0


if __name__ == "__main__":
    sys.exit(main())
