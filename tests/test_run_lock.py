"""The cluster path computes each run once: run folders locked while computed, searches before their
trainings, at most ``workers`` jobs at a time, and job logs that carry the INFO lines."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cpnas.errors import CpnasError
from cpnas.io import LOCK, RunLocked, lock_owner, run_lock

ROOT = Path(__file__).resolve().parents[1]


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid  # ended and reaped: no process has it (pids are not reused this soon)


def test_a_lock_records_pid_and_host_and_refuses_a_second_holder(tmp_path):
    folder = tmp_path / "run"
    with run_lock(folder):
        owner = json.loads((folder / LOCK).read_text())
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        assert lock_owner(folder)["pid"] == os.getpid()
        with run_lock(folder):  # reentrant in its process (a training's Parent run)
            pass
        assert (folder / LOCK).exists()
        code = (f"from cpnas.io import run_lock\nwith run_lock({str(folder)!r}, wait=0):\n    pass")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert proc.returncode != 0 and f"process {os.getpid()} on {socket.gethostname()}" in proc.stderr
    assert not (folder / LOCK).exists() and lock_owner(folder) is None


def test_a_stale_lock_is_detected_and_taken_over(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / LOCK).write_text(json.dumps({"pid": dead_pid(), "host": socket.gethostname(), "started": "then"}))
    assert lock_owner(folder) is None  # its process is gone
    (folder / LOCK).write_text(json.dumps({"pid": dead_pid(), "host": socket.gethostname(), "started": "then"}))
    with run_lock(folder, wait=0):
        assert json.loads((folder / LOCK).read_text())["pid"] == os.getpid()


def test_a_lock_of_another_host_counts_as_held(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / LOCK).write_text(json.dumps({"pid": 1, "host": "node-elsewhere", "started": "then"}))
    with pytest.raises(RunLocked, match="node-elsewhere"):
        with run_lock(folder, wait=0):
            pass
    assert json.loads((folder / LOCK).read_text())["host"] == "node-elsewhere"  # not ours to remove


def test_the_cli_refuses_a_run_folder_another_process_computes(tmp_path, capsys, data_dir):
    from cpnas.cli import main

    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK).write_text(json.dumps({"pid": 1, "host": "node-elsewhere", "started": "then"}))
    assert main(["train", "--genotype", str(data_dir / "darts_v2.json"), "--scale", "smoke", "--dataset",
                 "synthetic", "--device", "cpu", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "being computed by process 1 on node-elsewhere" in err and "\n" not in err


WORKER = """
import sys
import cpnas.evaluation as E
import cpnas.search as S
from cpnas.config import get_config
from cpnas.runs import RunSpec, SearchSpec, run_or_load

calls = sys.argv[1]
for module, name in ((E, "train_genotype"), (S, "run_search")):
    real = getattr(module, name)
    def counted(*a, _real=real, _name=name, **k):
        with open(calls, "a") as fh:
            fh.write(_name + "\\n")
        return _real(*a, **k)
    setattr(module, name, counted)
cfg = get_config("smoke", {"search.layers": 4, "search.init_channels": 4, "search.reduction_layers": "1,2",
                           "search.train_fraction": 0.05, "search.score_fraction": 0.025,
                           "data.synthetic_train": 400, "search.T": 1, "cifar.layers": 3,
                           "cifar.channels_small": 4, "cifar.epochs": 1, "cifar.batch_size": 16,
                           "cifar.train_fraction": 0.1, "cifar.test_fraction": 1.0, "data.synthetic_test": 16})
spec = RunSpec("tiny", seed=0, search=SearchSpec("random", dataset="synthetic"), dataset="synthetic")
print(run_or_load(spec, cfg, device="cpu").metrics["top1"])
"""


@pytest.mark.slow
def test_two_workers_on_one_key_compute_it_once(tmp_path):
    """Two processes given the same run: one searches and trains, the other waits and loads the result."""
    calls = tmp_path / "calls.txt"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CPNAS_HOME": str(tmp_path), "OMP_NUM_THREADS": "1",
           "CPNAS_PROGRESS": "0"}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(calls)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    assert sorted(calls.read_text().split()) == ["run_search", "train_genotype"]  # each computed once
    assert outs[0][0] == outs[1][0]  # both report the one result
    assert not list(tmp_path.glob(f"results/**/{LOCK}"))


def _jobs_log(lines: Path, n: int, seconds: float = 1.0):
    """Jobs that append 'start i' and 'end i' to ``lines`` around a sleep (picklable: subprocess.run)."""
    return [(subprocess.run, {"args": ["sh", "-c", f"echo start {i} >> {lines}; sleep {seconds}; "
                                                   f"echo end {i} >> {lines}"], "check": True})
            for i in range(n)]


@pytest.mark.slow
def test_one_worker_on_the_cluster_path_runs_one_job_at_a_time(tmp_path, monkeypatch):
    from cpnas import parallel
    from cpnas.parallel import SlurmOptions, run_jobs

    pytest.importorskip("submitit")
    monkeypatch.setattr(parallel, "POLL_S", 0.2)
    lines = tmp_path / "lines.txt"
    run_jobs(_jobs_log(lines, 3), workers=1, executor="submitit-local",
             slurm=SlurmOptions(folder=str(tmp_path / "logs"), time_min=5))
    events = lines.read_text().split("\n")[:-1]
    assert len(events) == 6
    assert all(a.split()[0] == "start" and b == "end " + a.split()[1] for a, b in zip(events[::2], events[1::2]))


@pytest.mark.slow
def test_cluster_job_logs_carry_the_info_lines(tmp_path, monkeypatch):
    import functools
    import logging

    from cpnas.parallel import SlurmOptions, run_jobs

    pytest.importorskip("submitit")
    monkeypatch.setattr(logging.getLogger(), "level", logging.INFO)
    job = functools.partial(logging.getLogger("cpnas.train").info, "epoch %d/%d: test top-1 %.2f %%", 1, 2, 42.0)
    run_jobs([(job, {})], executor="submitit-local", slurm=SlurmOptions(folder=str(tmp_path / "logs"), time_min=5))
    logs = "".join(p.read_text(errors="replace") for p in (tmp_path / "logs").rglob("*.err"))
    logs += "".join(p.read_text(errors="replace") for p in (tmp_path / "logs").rglob("*.out"))
    assert "INFO cpnas.train: epoch 1/2: test top-1 42.00 %" in logs


def test_run_all_computes_each_search_once_before_the_trainings(tmp_path, monkeypatch):
    """Two trainings of one search: one search job first, then the trainings (no job searches)."""
    from cpnas import parallel, runs
    from cpnas.config import get_config
    from cpnas.runs import RunSpec, SearchSpec

    monkeypatch.setenv("CPNAS_HOME", str(tmp_path))
    rounds = []
    monkeypatch.setattr(parallel, "run_jobs", lambda jobs, **k: rounds.append([fn.__name__ for fn, _ in jobs]))
    search = SearchSpec("random", dataset="synthetic")
    specs = [RunSpec("a", seed=0, search=search, dataset="synthetic"),
             RunSpec("b", seed=0, search=search, dataset="synthetic", size="medium"),
             RunSpec("c", seed=0, genotype=str(ROOT / "tests" / "data" / "darts_v2.json"), dataset="synthetic")]
    runs.run_all(specs, get_config("smoke"), workers=2, load=False)
    assert rounds == [["_search_job"], ["_job", "_job", "_job"]]


def test_a_failed_search_does_not_start_its_trainings_but_others_go_on(tmp_path, monkeypatch):
    from cpnas import parallel, runs
    from cpnas.config import get_config
    from cpnas.runs import RunSpec, SearchSpec

    monkeypatch.setenv("CPNAS_HOME", str(tmp_path))
    rounds = []

    def fake(jobs, **k):
        rounds.append([fn.__name__ for fn, _ in jobs])
        if jobs[0][0].__name__ == "_search_job":
            raise CpnasError("1 of 1 searches failed: no data")

    monkeypatch.setattr(parallel, "run_jobs", fake)
    specs = [RunSpec("a", seed=0, search=SearchSpec("random", dataset="synthetic"), dataset="synthetic"),
             RunSpec("c", seed=0, genotype=str(ROOT / "tests" / "data" / "darts_v2.json"), dataset="synthetic")]
    with pytest.raises(CpnasError, match="searches failed"):
        runs.run_all(specs, get_config("smoke"), load=False)
    assert rounds == [["_search_job"], ["_job"]]


def test_runs_another_process_holds_go_last_in_their_round(tmp_path, monkeypatch):
    """A worker does not idle behind another process's run while free runs remain: held runs are submitted last."""
    from cpnas import parallel, runs
    from cpnas.config import get_config
    from cpnas.runs import RunSpec

    monkeypatch.setenv("CPNAS_HOME", str(tmp_path))
    rounds = []
    monkeypatch.setattr(parallel, "run_jobs", lambda jobs, **k: rounds.append([a["spec"].name for _, a in jobs]))
    cell = str(ROOT / "tests" / "data" / "darts_v2.json")
    specs = [RunSpec(n, seed=0, genotype=cell, dataset="synthetic") for n in ("a", "b", "c", "d")]
    cfg = get_config("smoke")

    def hold(spec, pid, host=socket.gethostname()):
        folder = spec.out(cfg.scale)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / LOCK).write_text(json.dumps({"pid": pid, "host": host, "started": "now"}))

    hold(specs[0], os.getppid())  # a live process (this test's parent) computes "a"
    hold(specs[2], dead_pid())  # "c"'s holder is gone: its lock is stale, "c" is free
    hold(specs[3], os.getpid())  # this process's own lock does not count as another's
    runs.run_all(specs, cfg, workers=2, load=False)
    assert rounds == [["b", "c", "d", "a"]]
    assert runs.execute.held_last(specs, lambda s: s.out(cfg.scale)) == [specs[1], specs[2], specs[3], specs[0]]
    # a process of the same PID on another host (a shared file system) is another process
    hold(specs[3], os.getpid(), host=socket.gethostname() + "-elsewhere")
    assert runs.execute.held_last(specs, lambda s: s.out(cfg.scale)) == [specs[1], specs[2], specs[0], specs[3]]
