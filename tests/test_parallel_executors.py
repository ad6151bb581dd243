"""cpnas.parallel: the cluster path (submitit) runs jobs, keeps their order and reports CpnasErrors."""

from __future__ import annotations

import pytest

from cpnas.errors import CpnasError
from cpnas.parallel import SlurmOptions, run_jobs


def test_submitit_local_executor_runs_jobs_in_order_and_collects_failures(tmp_path):
    import statistics

    from cpnas.config import get_config

    pytest.importorskip("submitit")
    opts = SlurmOptions(folder=str(tmp_path / "logs"), time_min=5)
    jobs = [(statistics.fmean, {"data": [1.0, 2.0, 3.0]}), (statistics.fmean, {"data": [10.0]})]
    assert run_jobs(jobs, executor="submitit-local", slurm=opts) == [2.0, 10.0]
    with pytest.raises(CpnasError, match=r"1 of 2 runs failed: get_config: unknown scale 'bogus'"):
        run_jobs([(get_config, {"scale": "bogus"}), (statistics.fmean, {"data": [1.0]})],
                 executor="submitit-local", slurm=opts)
    assert any((tmp_path / "logs").iterdir())  # submitit's job folders and logs


def test_unknown_executor_is_one_line():
    with pytest.raises(CpnasError, match="unknown executor 'k8s'"):
        run_jobs([], executor="k8s")


def test_ablation_cli_takes_the_executor_options(capsys):
    from cpnas.ablation.__main__ import main

    with pytest.raises(SystemExit) as exc:
        main(["--executor", "yarn"])
    assert exc.value.code == 2 and "--executor" in capsys.readouterr().err
