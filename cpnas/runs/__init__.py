"""The run layer: what a run is (:class:`RunSpec`), where every run lives, the names of the files in a run
folder, the network a finished training holds, what the finished runs cost, and the one run-or-load.

Every study — notebooks 02-05, the ablation (:mod:`cpnas.ablation`), the proxy check
(:mod:`cpnas.proxy`), the recipe study (:mod:`cpnas.recipe`), the cell benchmark
(:mod:`cpnas.cellbench`), the search ranking (:mod:`cpnas.ranking`) and the strategy comparison
(:mod:`cpnas.comparison`) — describes its runs as :class:`RunSpec` values (a search,
:class:`SearchSpec`, or a fixed genotype, then one training) or, when its runs are searches, as
:class:`SearchSpec` values, and hands them to :func:`cpnas.runs.run_or_load`,
:func:`cpnas.runs.run_all` or :func:`cpnas.runs.run_searches`, the one run-or-load and the
parallel runners; its tables are functions of the finished runs.
:mod:`cpnas.runs.files`, :mod:`cpnas.runs.layout` and :mod:`cpnas.runs.spec` import neither
search nor training, so both can ask them where their runs go and what their files are called;
:func:`cpnas.runs.network.trained_network` rebuilds a finished training's network (``cpnas eval``,
``cpnas deploy``, the trained Parent of the kernel term).

* Each stage of a run, :data:`SEARCH` and :data:`TRAIN` (:mod:`cpnas.runs.stages`), holds its
  folder, its cache key, whether it finished, how it loads and how it computes. The cache key of a
  training is :func:`cpnas.runs.keys.run_key` (checked by :func:`cpnas.runs.train_or_load`);
  that of a search is the search and data sections of its config (:func:`cpnas.runs.keys.search_key`,
  checked by :func:`cpnas.runs.search_or_load`). A study that computes something more from a
  finished search in the same job (the search ranking scores cells with the trained supernet)
  gives it as a :class:`Stage` of its own to :func:`cpnas.runs.run_searches`.
* The names of the files in a run folder are :mod:`cpnas.runs.files`; what the finished runs cost
  (one summary for every study) is :mod:`cpnas.runs.cost`.
* The layout of ``results/<scale>/`` is computed here and nowhere else::

      search/<search name>/seed<N>          searches of notebooks 02-04, the proxy and the recipe study
      train/<name>/seed<N>                  trainings of notebooks 03-04
      ablation/search/<search name>/seed<N> the ablation's searches (notebook 05)
      ablation/train/<name>/seed<N>         the ablation's trainings
      proxy/train/<cell>/<budget>/seed<N>   the proxy check's trainings
      recipe/{sweep,full}/<name>/seed<N>    the recipe study's trainings
      cellbench/train/<cell>/seed<N>        the cell benchmark's trainings
      ranking/search/<name>/seed<N>         the search ranking's searches (each with its cell scores)
      strategies/search/<name>/seed<N>      the strategy comparison's searches
      submitit/                             logs of runs sent through submitit

  A search name is the strategy, ``-beta<β>`` when β_P is given, prefixed by the
  dataset when it is not :data:`cpnas.data.DEFAULT_DATASET`.
"""

from cpnas.runs.cost import (RECORD_FILES, REPRODUCE_STUDIES, compare, compare_summary, cost_summary,  # noqa: F401
                             cost_words, main, recorded_cost, recorded_number, recorded_seconds,
                             recorded_thread_seconds, require_finished, study_cost, thread_seconds)
from cpnas.runs.execute import RunResult, run_all, run_or_load, run_searches, run_specs, train_many  # noqa: F401
from cpnas.runs.files import (CHECKPOINT, COMPLETE, CONFIG, COST, GENOTYPE, HISTORY, INDICATOR, METRICS,  # noqa: F401
                              PARENT_DIR)
from cpnas.runs.keys import run_key, search_key  # noqa: F401
from cpnas.runs.layout import search_dir, search_name, stage_dir, study_dir, submitit_dir, train_dir  # noqa: F401
from cpnas.runs.spec import Overrides, RunSpec, SearchSpec, apply, first_per_key, overrides, unique  # noqa: F401
from cpnas.runs.stages import (SEARCH, TRAIN, Stage, load_metrics, search_finished, search_of,  # noqa: F401
                               search_or_load, train_finished, train_or_load)
