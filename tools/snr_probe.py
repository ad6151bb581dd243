"""Measure the search's signal-to-noise for candidate cpu sizes, on round 0 of Alg. 1 only.

    python tools/snr_probe.py --name train2k --set search.train_fraction=0.04 [--draws 8] [--seed 0]

Runs the first ``--draws`` epochs of the ``cpnas`` search at the ``cpu`` preset with
the given overrides (round 0 has K = 8 draws), then writes
``results/cpu/snr_probe/<name>.json`` with every draw's A_C, A_P, z and the round's
``snr`` (:func:`cpnas.indicator.round_noise`), plus the seconds it took. Used to
choose the score-split size and the training per draw of the ``cpu`` scale.
"""

from __future__ import annotations

import argparse
import time

import torch

from cpnas.config import get_config, parse_override
from cpnas.data import DEFAULT_DATASET, get_dataset
from cpnas.indicator import round_noise
from cpnas.io import write_json
from cpnas.runs import study_dir
from cpnas.search import search_data
from cpnas.strategies import CPNAS
from cpnas.strategy_base import SearchContext


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--draws", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    over = dict(parse_override(s) for s in args.set)
    cfg = get_config("cpu", over)
    dev = torch.device("cpu")
    images, train, score, _, calib = search_data(cfg, DEFAULT_DATASET, None, args.seed, dev)
    ctx = SearchContext(cfg=cfg, device=dev, train_loader=train, score_loader=score,
                        num_classes=get_dataset(DEFAULT_DATASET).num_classes,
                        seed=args.seed, beta_p=cfg.search.beta_p, calib_loader=calib)
    strat = CPNAS(ctx)
    t0 = time.perf_counter()
    draws = []
    for epoch in range(args.draws):
        rec = strat.run_epoch(epoch)
        draws.append({k: rec[k] for k in ("epoch", "A_C", "A_P", "z", "score_images")} | {"n": rec["score_images"]})
        print(draws[-1], flush=True)
    noise = round_noise(draws, cfg.search.beta_p, cfg.search.indicator)
    out = {"name": args.name, "overrides": over, "seed": args.seed, "draws": draws, **noise,
           "seconds": time.perf_counter() - t0, "threads": torch.get_num_threads(),
           "train_images": len(train.labels), "score_images": len(score.labels)}
    write_json(study_dir("cpu", "snr_probe") / f"{args.name}.json", out)
    print({k: out[k] for k in ("z_std", "z_se", "snr", "seconds")})


if __name__ == "__main__":
    main()
