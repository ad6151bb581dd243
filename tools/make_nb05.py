"""Write notebooks/05_ablation.ipynb (outputs empty; `make reproduce-fig6` fills them)."""
import nbformat as nbf

md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
cells = [
    md("# 05 — Ablations: β_P and search strategies (Fig. 6), and the CP loss\n\n"
       "Reproduces **Fig. 6** of *CP-NAS* (IJCAI 2020, §3.4) and adds an ablation of the CP loss:\n\n"
       "1. **β_P sweep (Fig. 6 left).** The `cpnas` search at β_P ∈ {0, 0.33, 0.5, 1, 2, 3, 4} (Eq. 1; β_P = 0 is "
       "BNAS†), each found cell trained the same way, over several seeds. The paper: accuracy rises with β_P, "
       "then falls for β_P ≥ 2, and larger β_P selects fewer convolutions.\n"
       "2. **Search strategies (Fig. 6 right).** Random selection, PC-DARTS, BNAS† and CP-NAS on the same 1-bit "
       "space, each architecture trained identically, with each search's measured cost (the paper: CP-NAS is "
       "30 % faster than PC-DARTS).\n"
       "3. **CP loss (beyond the paper).** One cell trained with cross-entropy only, + the kernel term (H = the "
       "Child's latent weights, or the trained Parent's filters), + the center term, and the full loss of Eq. 4; "
       "on two cells: the CP-NAS cell of `02_search_cifar`, and a BNAS† cell (this ablation's β_P = 0 search, "
       "seed 0), because the CP-NAS cell hardly trains at CPU budgets (Table 1).\n\n"
       "Every run is cached in `results/<scale>/ablation/{search,train}/<name>/seed<N>/`: this notebook computes "
       "only the missing ones (two at a time on a CPU, `cpnas.parallel`) and an interrupted sweep resumes where it "
       "stopped; the same runs can be computed ahead with `python -m cpnas.ablation --scale cpu --jobs 2`. "
       "The sizes of the ablation runs (`cpnas.ablation.ABLATION_SIZES`) are cut from the scale's preset so that "
       "all of it fits the budget stated below; at `cpu` and `smoke` scale the numbers are **not** the paper's."),
    code('import os\n\nSCALE = os.environ.get("CPNAS_SCALE", "cpu")\nSEEDS = None  # None: (0, 1, 2), or (0, 1) at the smoke scale\nBETAS = None  # None: the seven β_P of Fig. 6, or four at the smoke scale\n'
         'DATA = None  # CIFAR-10 ImageFolder root; None: $CPNAS_CIFAR10, else torchvision downloads CIFAR-10',
         metadata={"tags": ["parameters"]}),
    code("%matplotlib inline\nimport cpnas.ablation\nimport cpnas.parallel\nimport cpnas.paths\n"
         "import cpnas.plots_ablation\nimport cpnas.search\nimport cpnas.tables\n\n"
         "SEEDS = SEEDS or cpnas.ablation.default_seeds(SCALE)\nBETAS = BETAS or cpnas.ablation.default_betas(SCALE)\ncfg = cpnas.ablation.ablation_config(SCALE)\ncpnas.paths.run_info(SCALE, dataset=\"cifar10\")"),
    md("## The size of one run\n\nThe ablation's search and training settings at this scale (only size fields "
       "differ from the paper; `value` is what the ablation uses):"),
    code("cfg_table = cpnas.search.config_table(cfg, section=\"search\")\n"
         "cfg_table[cfg_table[\"size field\"]]"),
    code("cfg_table = cpnas.search.config_table(cfg, section=\"cifar\")\n"
         "cfg_table[cfg_table[\"size field\"]]"),
    md("## Run (or load) every run\n\nThe three studies share runs: the β_P = 0 and β_P = 2 points of the sweep are "
       "the BNAS† and CP-NAS runs of the strategy study. The loss studies train the cell of `02_search_cifar` and the "
       "cell of the β_P = 0 search at seed 0 (computed first)."),
    code("genotype_path = cpnas.tables.default_genotype_path(SCALE)\n"
         "cpnas.tables.resolve_genotype(genotype_path, SCALE)  # fails with the command to run if 02 has not\n"
         "runs = cpnas.ablation.all_runs(genotype_path, seeds=SEEDS, betas=BETAS,\n"
         "                                bnas_genotype=cpnas.ablation.bnas_genotype_path(SCALE))\n"
         "rows = cpnas.ablation.run_all(runs, SCALE, jobs=cpnas.parallel.default_workers(), data_root=DATA)\n"
         "print(f\"{len(rows)} result rows from {len(cpnas.ablation.unique_runs(runs, SCALE))} distinct runs\")"),
    md("### What one run costs here\n\nMean wall-clock per run (minutes) of each study, measured by the runs "
       "themselves (each ran as one of two one-thread processes side by side on this machine):"),
    code("import pandas as pd\n\n"
         "pd.concat([cpnas.ablation.summarize(rows, s)[[\"label\", \"n\", \"search (min)\", \"train (min)\"]]"
         ".assign(study=s) for s in (\"beta\", \"strategy\", *cpnas.ablation.LOSS_STUDIES)]).round(2)"),
    code("cost, jobs = cpnas.ablation.sweep_cost(rows), cpnas.parallel.default_workers()\n"
         "print(f\"{cost['runs']} distinct runs, {cost['per_run_min']:.1f} min each on average: \"\n"
         "      f\"{cost['run_hours']:.2f} h of run time, ≈ {cost['run_hours'] / jobs:.2f} h of wall-clock {jobs} at a time \"\n"
         "      f\"(the runs' own search and training loops; process start-up, data loading and the 32-bit Parent that the H = Parent variant trains first are not counted)\")"),
    md("## Fig. 6"),
    code("fig = cpnas.plots_ablation.fig6(rows)\ncpnas.paths.save_figure(fig, \"fig6\", SCALE)\nfig"),
    md("## β_P (Fig. 6 left)\n\nMean ± sample std over seeds of the top-1 test accuracy of the trained 1-bit "
       "network, per β_P, and whether the paper's shape shows (computed from the rows, not written by hand):"),
    code("beta_table = cpnas.ablation.summarize(rows, \"beta\", by=\"beta_p\").sort_values(\"beta_p\")\n"
         "cpnas.paths.save_table(beta_table.round(3), \"fig6_beta\", SCALE,\n"
         "                       caption=f\"Fig. 6 (left), ours at scale {SCALE}: top-1 (%) vs beta_P, mean and \"\n"
         "                               f\"sample std over seeds.\")\n"
         "beta_table.round(2)"),
    code("print(cpnas.ablation.beta_verdict(rows))"),
    md("§3.4 also says that a larger β_P selects fewer convolutions. The share of convolution ops among the kept "
       "edges of both found cells, per β_P (this needs no training, so it is less noisy than the accuracies):"),
    code("geno = cpnas.ablation.genotype_table(cpnas.ablation.beta_runs(SEEDS, BETAS), SCALE)\n"
         "fig = cpnas.plots_ablation.conv_ops_vs_beta(geno)\ncpnas.paths.save_figure(fig, \"fig6_conv_share\", SCALE)\n"
         "geno.groupby(\"beta_p\")[[\"conv ops\", \"pool ops\", \"kept edges\", \"conv share\"]].mean().round(2)"),
    md("Which searches found the same cells? A digest of both found cells per β_P (rows) and seed (columns); "
       "equal digests mean the same architecture:"),
    code("print(cpnas.ablation.same_cells_in_words(geno))\n"
         "geno.pivot_table(index=\"beta_p\", columns=\"seed\", values=\"cells\", aggfunc=\"first\")"),
    md("Do convolution-heavy cells train worse at this budget (the explanation Table 1's notebook offers for its "
       "CP-NAS rows)? Each searched cell's convolution share against its trained accuracy:"),
    code("share, r = cpnas.ablation.conv_share_vs_accuracy(geno, rows)\n"
         "print(f\"Pearson r between convolution share and top-1 over {len(share)} searches: {r:+.2f}\")\n"
         "share.sort_values(\"conv share\").round(3)"),
    md("## Search strategies (Fig. 6 right) and their cost"),
    code("strategy_table = cpnas.ablation.summarize(rows, \"strategy\")\n"
         "cpnas.paths.save_table(strategy_table.round(3), \"fig6_strategies\", SCALE,\n"
         "                       caption=f\"Fig. 6 (right), ours at scale {SCALE}: top-1 (%) per search strategy \"\n"
         "                               f\"(mean, sample std over seeds) and measured search wall-clock.\")\n"
         "strategy_table.round(2)"),
    code("fig = cpnas.plots_ablation.search_cost(rows)\ncpnas.paths.save_figure(fig, \"fig6_search_cost\", SCALE)\nfig"),
    code("print(cpnas.ablation.strategy_verdict(rows))"),
    md("## The CP loss (beyond the paper)\n\nThe same cell and budget; only the loss differs. λ = "
       "`loss.center_lambda` and H = `loss.kernel_source` (⚑ in the README's deviations table). One table for "
       "both cells (`study`: `loss` = 02's CP-NAS cell, `loss-bnas` = the BNAS† cell):"),
    code("loss_table = pd.concat([cpnas.ablation.summarize(rows, s).assign(study=s) for s in cpnas.ablation.LOSS_STUDIES])\n"
         "loss_table = loss_table[[\"study\", \"label\", \"n\", \"top1 mean\", \"top1 std\", \"train (min)\"]]\n"
         "cpnas.paths.save_table(loss_table.round(3), \"cp_loss_ablation\", SCALE,\n"
         "                       caption=f\"CP-loss ablation, ours at scale {SCALE}: top-1 (%) per loss variant \"\n"
         "                               f\"(mean, sample std over seeds), same cell and budget within a study.\")\n"
         "loss_table.round(2)"),
    code("fig = cpnas.plots_ablation.loss_ablation(rows)\ncpnas.paths.save_figure(fig, \"cp_loss_ablation\", SCALE)\n"
         "fig"),
    code("for study, cell in cpnas.ablation.LOSS_STUDIES.items():\n"
         "    print(f\"On {cell}:\")\n"
         "    for other in (\"cross-entropy\", \"+ kernel term (H = Child)\", \"+ kernel term (H = Parent)\", "
         "\"+ center term\"):\n"
         "        d = cpnas.ablation.difference(rows, study, \"CP loss (Eq. 4)\", other)\n"
         "        print(f\"  CP loss minus {other}: {cpnas.ablation.in_words(d)}\")"),
    md("## Reading these results\n\n"
       "* **Scale.** Below `paper` the searches and trainings are far shorter than the paper's (see the sizes "
       "above): the accuracies measure what this budget can show. Every comparison above is a Welch t-test over "
       "seeds (`cpnas.ablation.difference`); with 3 seeds a side a difference needs about 3-4 standard errors to "
       "reach p < 0.05, and with several comparisons one of them may pass by chance. The sentences are computed "
       "from the rows, not written by hand.\n"
       "* **1-bit training is slow to start.** The 1-bit networks of this space (every convolution, the cell "
       "preprocessing included, takes binary inputs) learn far more slowly than their 32-bit twins; at CPU "
       "budgets some cells stay near chance (10 %) while others start to learn, and the convolution share "
       "explains little of which (the correlation above). At this budget Fig. 6 therefore ranks cells by how fast they start to learn, which need "
       "not be how well they end after the paper's 600 epochs.\n"
       "* **Same cells.** Searches at different β_P can find the same cells (the table of digests above); "
       "such points of Fig. 6 are one result drawn twice.\n"
       "* **Search cost** is measured wall-clock on this machine for each strategy's schedule at this scale "
       "(CP-NAS: 35 epochs of a 1-bit Child and a 32-bit Parent at T = 1; PC-DARTS: its warm-up and "
       "bilevel epochs), two runs side by side; `make bench` projects both to the paper's schedules."),
]
nb = nbf.v4.new_notebook(cells=cells, metadata={
    "kernelspec": {"display_name": "Python 3 (cpnas)", "language": "python", "name": "python3"},
    "language_info": {"name": "python"}})
nbf.write(nb, "notebooks/05_ablation.ipynb")
