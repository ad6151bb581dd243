"""Bad input and faults: one line on stderr, exit 2, before any data loads, nothing lost (docs/reliability.md)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from cpnas.cli import main
from cpnas.errors import CpnasError

ROOT = Path(__file__).resolve().parents[1]
GENOTYPE = str(Path(__file__).parent / "data" / "darts_v2.json")
TINY_SEARCH = ["--scale", "smoke", "--dataset", "synthetic", "--device", "cpu", "--set", "search.layers=4",
               "--set", "search.init_channels=4", "--set", "search.reduction_layers=1,2",
               "--set", "search.train_fraction=0.05", "--set", "search.score_fraction=0.025",
               "--set", "data.synthetic_train=400"]


def one_line(capsys, prog: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"{prog}: error:") and "\n" not in err and "Traceback" not in err, err
    return err


@pytest.fixture
def no_data(monkeypatch):
    """Any data load fails the test: a refusal must come before the data."""
    import cpnas.data

    def boom(*a, **k):
        raise AssertionError("data was loaded")

    monkeypatch.setattr(cpnas.data, "load_dataset", boom)


# --- --out ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["search", *TINY_SEARCH], ["train", "--genotype", GENOTYPE]])
def test_an_empty_out_is_refused(command, capsys, no_data):
    with pytest.raises(SystemExit) as exc:
        main([*command, "--out", ""])
    assert exc.value.code == 2 and "empty name" in capsys.readouterr().err


@pytest.fixture
def read_only_fs(monkeypatch):
    """Every new file fails as on a read-only file system (chmod does not stop root, who runs CI)."""
    def refuse(*a, **k):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)


@pytest.mark.parametrize("command", [["search", *TINY_SEARCH], ["train", "--genotype", GENOTYPE, "--scale", "smoke",
                                                                "--dataset", "synthetic", "--device", "cpu"]])
def test_a_read_only_out_is_one_line_before_data_loads(command, tmp_path, capsys, no_data, read_only_fs):
    assert main([*command, "--out", str(tmp_path / "run")]) == 2
    assert "read-only file system" in one_line(capsys, f"cpnas {command[0]}")
    assert not (tmp_path / "run").exists()


def test_a_read_only_deploy_out_is_one_line_before_the_build(tmp_path, capsys, monkeypatch, read_only_fs):
    import cpnas.deploy.report

    monkeypatch.setattr(cpnas.deploy.report, "deploy_report", lambda *a, **k: pytest.fail("deploy ran"))
    assert main(["deploy", "--genotype", GENOTYPE, "--out", str(tmp_path / "net.cpnas")]) == 2
    assert "read-only file system" in one_line(capsys, "cpnas deploy")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_a_chmod_read_only_out_is_one_line(tmp_path, capsys, no_data):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        assert main(["train", "--genotype", GENOTYPE, "--scale", "smoke", "--dataset", "synthetic",
                     "--out", str(folder / "run")]) == 2
        assert "permission denied" in one_line(capsys, "cpnas train")
    finally:
        folder.chmod(0o755)


def test_deploy_with_a_missing_checkpoint_is_refused_before_the_extension_is_built(tmp_path, capsys, monkeypatch):
    import cpnas.deploy.report

    monkeypatch.setattr(cpnas.deploy.report, "deploy_report", lambda *a, **k: pytest.fail("deploy ran"))
    assert main(["deploy", "--genotype", GENOTYPE, "--checkpoint", str(tmp_path / "nothere")]) == 2
    assert "no such folder" in one_line(capsys, "cpnas deploy")
    assert main(["deploy", "--genotype", GENOTYPE, "--checkpoint", str(tmp_path)]) == 2
    assert "no checkpoint.pt" in one_line(capsys, "cpnas deploy")


# --- sizes, genotypes ------------------------------------------------------------------------------------------


def test_a_search_too_large_for_memory_is_refused_with_its_estimate(tmp_path, capsys, no_data):
    assert main(["search", *TINY_SEARCH, "--set", "search.init_channels=1000000", "--out", str(tmp_path / "s")]) == 2
    err = one_line(capsys, "cpnas search")
    assert "cannot fit in memory" in err and "GiB" in err and "search.init_channels = 1000000" in err
    assert not (tmp_path / "s").exists()


def test_a_training_too_large_for_memory_is_refused_with_its_estimate(tmp_path, capsys, no_data):
    assert main(["train", "--genotype", GENOTYPE, "--scale", "smoke", "--dataset", "synthetic", "--device", "cpu",
                 "--set", "cifar.channels_small=1000000", "--out", str(tmp_path / "t")]) == 2
    err = one_line(capsys, "cpnas train")
    assert "cannot fit in memory" in err and "GiB" in err
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("kind", ["normal", "reduce"])
def test_a_genotype_whose_concat_repeats_a_node_is_refused(tmp_path, kind, capsys):
    from cpnas.genotype import load_genotype

    obj = json.loads(Path(GENOTYPE).read_text())
    obj[f"{kind}_concat"] = [2, 3, 3, 5]
    path = tmp_path / "g.json"
    path.write_text(json.dumps(obj))
    with pytest.raises(CpnasError, match=rf"{kind}_concat: node\(s\) \[3\] are listed twice"):
        load_genotype(path)
    assert main(["train", "--genotype", str(path), "--scale", "smoke", "--dataset", "synthetic",
                 "--out", str(tmp_path / "t")]) == 2
    assert "listed twice" in one_line(capsys, "cpnas train")


# --- the environment ------------------------------------------------------------------------------------------

COMMANDS = [["config"], ["search", "--dry-run"], ["train", "--genotype", GENOTYPE, "--out", "OUT"],
            ["eval", "--checkpoint", "OUT"], ["profile", "--arch", "wrn22"], ["deploy", "--genotype", GENOTYPE]]


@pytest.mark.parametrize("var, value", [("CPNAS_LOADER", "disk"), ("CPNAS_WORKERS", "two"), ("CPNAS_WORKERS", "0"),
                                        ("CPNAS_FORMS", "dilated_conv=fast")])
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_unknown_environment_values_are_refused_by_every_command(command, var, value, tmp_path, monkeypatch,
                                                                 capsys, no_data):
    monkeypatch.setenv(var, value)
    argv = [str(tmp_path / "out") if a == "OUT" else a for a in command]
    assert main(argv) == 2
    assert var in one_line(capsys, f"cpnas {command[0]}")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("module, argv", [("cpnas.ablation.__main__", ["--cost", "--scale", "smoke"]),
                                          ("cpnas.runs", ["--scale", "smoke"])])
def test_unknown_environment_values_are_refused_by_the_study_drivers(module, argv, monkeypatch, capsys):
    import importlib

    monkeypatch.setenv("CPNAS_FORMS", "sign=fast")
    code = importlib.import_module(module).main(argv)
    assert code == 2 and "CPNAS_FORMS" in capsys.readouterr().err


# --- output and logs --------------------------------------------------------------------------------------------


def test_cpnas_config_into_a_closed_pipe_is_silent():
    """``cpnas config | head``: the reader is gone before the output is written; no BrokenPipe traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "cpnas", "config"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    proc.stdout.close()  # before the interpreter has even imported cpnas
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err, err


def test_ablation_on_slurm_without_slurm_is_one_line(monkeypatch, capsys):
    import shutil

    from cpnas.ablation import __main__ as ablation_cli

    pytest.importorskip("submitit")
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "sbatch" else real_which(name, *a, **k))
    monkeypatch.setattr(ablation_cli, "run_all", lambda *a, **k: pytest.fail("runs started"))
    assert ablation_cli.main(["--executor", "slurm", "--scale", "smoke", "--study", "table1", "--seeds", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "needs Slurm" in err and "\n" not in err


def test_a_round_without_noise_estimate_logs_one_clean_line(tmp_path, caplog, monkeypatch):
    """A round whose snr cannot be estimated (too few draws) logs 'n/a', not a '--- Logging error ---'."""
    import logging

    from cpnas import strategies
    from cpnas.config import get_config
    from cpnas.search import run_search

    monkeypatch.setattr(strategies, "round_noise",
                        lambda draws, *a, **k: {"draws": len(draws), "z_std": None, "z_se": None, "snr": None})
    cfg = get_config("smoke", {"search.layers": 4, "search.init_channels": 4, "search.reduction_layers": "1,2",
                               "search.train_fraction": 0.05, "search.score_fraction": 0.025,
                               "data.synthetic_train": 400, "search.T": 1})
    with caplog.at_level(logging.INFO, logger="cpnas.strategies"):
        run_search("cpnas", cfg, dataset="synthetic", out=tmp_path / "s", device="cpu")
    rounds = [r.getMessage() for r in caplog.records if r.getMessage().startswith("round ")]
    assert rounds and all("snr n/a" in m for m in rounds)


# --- python -m cpnas.runs on damaged run files -------------------------------------------------------------------


@pytest.fixture
def results(tmp_path, monkeypatch):
    """An empty project root for ``results/smoke``."""
    monkeypatch.setenv("CPNAS_HOME", str(tmp_path))
    from cpnas.paths import results_dir

    root = results_dir("smoke")
    assert str(root).startswith(str(tmp_path)), root
    return root


DAMAGED = {"truncated": b'{"wall_clock_s": 12', "binary": bytes(range(256)), "list": b"[1, 2]",
           "string seconds": b'{"wall_clock_s": "twelve", "top1": "high"}', "null": b"null"}


@pytest.mark.parametrize("damage", DAMAGED, ids=list(DAMAGED))
@pytest.mark.parametrize("kind, name", [("search", "cost.json"), ("train", "metrics.json")])
def test_runs_cost_of_a_damaged_run_file_names_the_file(results, capsys, damage, kind, name):
    from cpnas import runs

    run = results / kind / "x" / "seed0"
    run.mkdir(parents=True)
    (run / name).write_bytes(DAMAGED[damage])
    assert runs.main(["--scale", "smoke"]) == 2
    err = capsys.readouterr().err.strip()
    assert str(run / name) in err and "\n" not in err and "Traceback" not in err


@pytest.mark.parametrize("content", [{"wall_clock_s": 1.0}, {"top1": "50"}, {"top1": None}])
def test_runs_compare_with_a_metrics_file_lacking_top1_names_the_file(results, tmp_path, capsys, content):
    from cpnas import runs

    here = results / "train" / "x" / "seed0"
    here.mkdir(parents=True)
    (here / "metrics.json").write_text(json.dumps({"top1": 50.0, "wall_clock_s": 1.0}))
    other = tmp_path / "other"
    there = other / here.relative_to(tmp_path)
    there.mkdir(parents=True)
    (there / "metrics.json").write_text(json.dumps(content))
    assert runs.main(["--scale", "smoke", "--compare", str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert str(there / "metrics.json") in err and "\n" not in err


# --- checkpoints that are not what they claim --------------------------------------------------------------------


def test_a_search_resumed_from_a_checkpoint_that_is_not_a_dict_is_one_line(tmp_path, capsys, no_data):
    out = tmp_path / "s"
    out.mkdir()
    torch.save(torch.ones(3), out / "checkpoint.pt")
    assert main(["search", *TINY_SEARCH, "--out", str(out), "--resume"]) == 2
    assert "not a cpnas checkpoint" in one_line(capsys, "cpnas search")
