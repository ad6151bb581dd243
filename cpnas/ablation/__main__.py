"""``python -m cpnas.ablation``: compute the missing runs of the ablation studies at their own sizes (the β_P
sweep, the strategies, the CP loss, Table 1's rows). At ``cpu`` the reproduced results come from the strategy
comparison instead (:mod:`cpnas.comparison`); this runs the same studies at any scale, e.g. ``paper`` on Slurm."""

from __future__ import annotations

from typing import Sequence

from cpnas.ablation import (ABLATION_SIZES, LOSS_STUDIES, Run, beta_runs, bnas_genotype_path, default_loss_seeds,
                            default_seeds, gap_runs, load_rows, loss_runs, specs, strategy_runs)
from cpnas.arguments import add_executor_args, name_list, run_study, seed_list, slurm_options, study_parser
from cpnas.config import get_config
from cpnas.runs import cost_words, run_all, study_cost
from cpnas.table_runs import default_table1_seeds, table1_runs


def main(argv: Sequence[str] | None = None) -> int:
    p = study_parser("python -m cpnas.ablation", "Compute the missing runs of the ablation studies at their own sizes.",
                     tuple(ABLATION_SIZES))
    studies = ("table1", "beta", "beta-gap", "strategy", *LOSS_STUDIES)
    p.add_argument("--study", type=name_list((*studies, "all"), "study"), default=("all",),
                   help=f"comma-separated studies, computed as one run list (default: all = every one but "
                        f"loss-bnas); from {', '.join(studies)}")
    p.add_argument("--seeds", default=None, type=seed_list,
                   help="comma-separated seeds (default: 0-4 for Fig. 6's studies, 0-2 for Table 1 and the "
                        "loss studies)")
    p.add_argument("--genotype", default=None, help="genotype of the loss study (default: the 02 search's)")
    p.add_argument("--device", default="auto")
    p.add_argument("--cost", action="store_true",
                   help="compute nothing: print the wall-clock the chosen studies' finished runs recorded, and that "
                        "sum divided by --jobs (at least 2: the budget assumes two one-thread runs at a time)")
    add_executor_args(p)
    args = p.parse_args(argv)

    def work():
        chosen = set(studies) - {"loss-bnas"} if "all" in args.study else set(args.study)
        seeds = args.seeds or default_seeds(args.scale)
        few = args.seeds or default_loss_seeds(args.scale)
        runs: list[Run] = []
        if "table1" in chosen:
            runs += table1_runs(args.seeds or default_table1_seeds(args.scale))
        if "beta" in chosen:
            runs += beta_runs(seeds)
        if "beta-gap" in chosen:
            runs += gap_runs(seeds)
        if "strategy" in chosen:
            runs += strategy_runs(seeds)
        if "loss" in chosen:
            from cpnas.tables import default_genotype_path, resolve_genotype

            geno = args.genotype or default_genotype_path(args.scale)
            resolve_genotype(geno, args.scale)  # fails early with the command that makes it
            runs += loss_runs(geno, few)
        if "loss-bnas" in chosen:
            # its cell is the β_P = 0 search at seed 0: listed so that run_all computes it first
            runs += beta_runs((0,), (0.0,)) + loss_runs(bnas_genotype_path(args.scale), few, study="loss-bnas")
        if args.cost:
            return cost_words(study_cost(specs(runs, args.scale), args.scale), args.jobs if args.jobs > 1 else 2)
        run_all(specs(runs, args.scale), get_config(args.scale), workers=args.jobs, data_root=args.data,
                device=args.device, executor=args.executor, slurm=slurm_options(args, args.scale),
                desc="ablation runs", load=False)
        return f"{len(load_rows(runs, args.scale))} finished runs"

    return run_study(p.prog, work)


if __name__ == "__main__":
    raise SystemExit(main())
