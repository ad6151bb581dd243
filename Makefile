# cpnas — reproduce CP-NAS (IJCAI 2020). Every target creates the venv first if needed.
#   make reproduce-table1            # default SCALE=cpu (runs on a CPU)
#   make reproduce COMPUTE=0         # every notebook from the finished runs only
#   make reproduce-table2 SCALE=paper   # the paper's sizes, for a GPU (Table 1 at paper: docs/scaling-out.md)
#   make test                        # pytest + notebooks executed at the smoke scale (nbval)
#   make test-forms                  # pytest with every non-default kernel form forced (CI runs both)
SHELL := /bin/bash
export OMP_WAIT_POLICY ?= PASSIVE
PYTHON ?= python3
SCALE ?= cpu
COMPUTE ?= 1
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The scale reaches the notebooks through CPNAS_SCALE only: `papermill -p` would inject a
# parameters cell into the committed notebooks, and nbval would then re-run them at that scale.
# Smoke runs must not overwrite the committed notebooks (they keep the real cpu outputs).
NB_OUT := $(if $(filter smoke,$(SCALE)),results/smoke/notebooks,notebooks)
# Each notebook runs under papermill, then loses papermill's wall-clock stamps (cpnas.nbclean): re-running it
# from the same runs rewrites no byte of the committed notebook.
run_notebook = mkdir -p $(NB_OUT) && CPNAS_SCALE=$(SCALE) CPNAS_COMPUTE=$(COMPUTE) $(BIN)/papermill --cwd notebooks notebooks/$(1).ipynb \
    $(NB_OUT)/$(1).ipynb && $(BIN)/python -m cpnas.nbclean $(NB_OUT)/$(1).ipynb

.PHONY: help venv test test-unit test-forms test-notebooks lab bench clean recipe-sweep proxy-check cell-benchmark search-ranking \
        reproduce reproduce-fig3 reproduce-fig5 reproduce-table1 reproduce-table2 reproduce-table3 reproduce-fig6

# `make help` prints the targets with their `##` comments (a test checks that every target has one).
help:  ## this list
	@echo "make TARGET [SCALE=smoke|cpu|paper] [JOBS=N]   (default SCALE=$(SCALE); every target creates .venv first)"
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z0-9-]+):.*## (.*)/  \1\t\2/' | expand -t 22

venv: $(STAMP)  ## .venv/ with the package (editable) and every extra: notebooks, test, cluster
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[notebooks,test,cluster]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (cpnas)" > /dev/null
	touch $(STAMP)

test: test-unit test-notebooks  ## pytest, then every notebook at the smoke scale (nbval)

test-unit: venv  ## pytest only
	$(BIN)/python -m pytest -q

# The unit tests again with every non-default kernel form forced (cpnas.dispatch): a test that depends on the
# forms a machine picks by timing fails here on every machine, not only on some. torch.compile is left to its
# own tests (tests/test_compile.py): compiling every network of the suite would take hours.
NONDEFAULT_FORMS = $(shell $(BIN)/python -c "from cpnas.dispatch import FORMS; \
    print(','.join(f'{op}={forms[1]}' for op, forms in FORMS.items() if op != 'compile'))")
test-forms: venv  ## pytest with every non-default kernel form forced (CI runs it after make test)
	CPNAS_FORMS="$(NONDEFAULT_FORMS)" $(BIN)/python -m pytest -q -p no:cacheprovider \
	    --ignore=tests/test_docs.py --ignore=tests/test_packaging.py  # pages and packaging use no kernel

# Every notebook executed at the smoke scale; only cells marked NBVAL_CHECK_OUTPUT are compared.
test-notebooks: venv  ## every notebook executed at the smoke scale (nbval)
	CPNAS_SCALE=smoke CPNAS_PROGRESS=0 $(BIN)/python -m pytest -q --nbval-lax --nbval-current-env \
	    -p no:cacheprovider notebooks/

lab: venv  ## JupyterLab on notebooks/
	$(BIN)/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root,)

bench: venv  ## speed benchmark: results/bench/bench.{json,md} (docs/benchmarks.md)
	$(BIN)/python -m cpnas.bench --out results/bench --data-parallel on

# The studies of the cpu proxy; 03 shows their cached runs. JOBS one-thread runs at a time.
JOBS ?= 2
recipe-sweep: venv  ## the cpu recipe sweep on 1-bit DARTS_V2, then the chosen recipe at 3 seeds
	$(BIN)/python -m cpnas.recipe --scale $(SCALE) --jobs $(JOBS)
	for cell in darts_v2 cpnas-s0; do $(BIN)/python -m cpnas.recipe --scale $(SCALE) --jobs $(JOBS) --full \
	    --cell $$cell --seeds 0,1,2 --variants $$($(BIN)/python -c \
	    "import cpnas.recipe as r; print(r.chosen_variant(r.collect('$(SCALE)')))") || exit 1; done

proxy-check: venv  ## does the cpu training budget rank cells like a longer one? (Kendall tau)
	$(BIN)/python -m cpnas.proxy --scale $(SCALE) --jobs $(JOBS)

cell-benchmark: venv  ## train the 1-bit cell benchmark at the cpu budget: tables/cell_benchmark.{csv,md}
	$(BIN)/python -m cpnas.cellbench --scale $(SCALE) --jobs $(JOBS)

search-ranking: venv  ## score the benchmark in each strategy's supernets at 3 budgets: tables/search_ranking.{csv,md}
	$(BIN)/python -m cpnas.ranking --scale $(SCALE) --jobs $(JOBS)

strategy-comparison: venv  ## the strategies at the budget search-ranking picks, by the written stopping rule: tables/fig6_strategies, strategy_verdicts
	$(BIN)/python -m cpnas.comparison --scale $(SCALE) --jobs $(JOBS)

reproduce-fig3: venv  ## 01: ops sanity, Fig. 3 (cell DAG), Fig. 4 (op set)
	$(call run_notebook,01_ops_sanity)

reproduce-fig5: venv  ## 02: the CP-NAS search on CIFAR-10, Fig. 5 (cells found), search cost
	$(call run_notebook,02_search_cifar)

# Table 1 and Fig. 6 need the cell benchmark, the search ranking (its rule picks the search budget) and the
# strategy comparison: each study computes only its missing runs (nothing, from the committed run cache), then
# the notebook draws. COMPUTE=0 draws from the finished runs only.
study = $(if $(filter 0,$(COMPUTE)),echo "COMPUTE=0: python -m cpnas.$(1) not run",\
    $(BIN)/python -m cpnas.$(1) --scale $(SCALE) --jobs $(JOBS))
comparison-studies = $(call study,cellbench) && $(call study,ranking) && $(call study,comparison)

reproduce-table1: venv  ## cell benchmark, search ranking, strategy comparison (missing runs only), then 03: Table 1
	$(comparison-studies)
	$(call run_notebook,03_eval)

reproduce-table2: venv  ## 04: Table 2 (ImageNet network; Imagenette when ImageNet is absent)
	$(call run_notebook,04_imagenet)

reproduce-table3: reproduce-fig5  ## 02, then 06: Table 3 (memory and FLOPs vs WRN-22), 1-bit inference
	$(call run_notebook,06_efficiency)

reproduce-fig6: venv  ## the same studies (missing runs only), then 05: Fig. 6 (strategies, beta_P), CP-loss study
	$(comparison-studies)
	$(call run_notebook,05_ablation)

reproduce: reproduce-fig3 reproduce-fig5 reproduce-table1 reproduce-table2 reproduce-table3 reproduce-fig6  ## all six notebooks in dependency order

clean:  ## remove results/smoke/ (the smoke outputs of make test) and .pytest_cache
	rm -rf results/smoke .pytest_cache
