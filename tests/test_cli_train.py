"""``cpnas train`` end to end at a tiny size on synthetic data: metrics.json, resume, errors."""

from __future__ import annotations

import json

import pytest

from cpnas.cli import main

REQUIRED = {"test_error", "top1", "top5", "params", "params_m", "memory_mbit", "flops_m", "epochs",
            "wall_clock_s", "device", "scale", "dataset", "dataset_description", "genotype_path", "loss",
            "precision", "size", "paper_size"}

# smaller than the smoke preset: three cells of 4 channels on 48 synthetic 16×16 images
TINY = ["--set", "cifar.layers=3", "--set", "cifar.channels_small=4", "--set", "cifar.image_size=16",
        "--set", "cifar.batch_size=16", "--set", "cifar.epochs=2", "--set", "cifar.train_fraction=1.0",
        "--set", "cifar.test_fraction=1.0", "--set", "data.synthetic_train=48", "--set", "data.synthetic_test=16",
        "--set", "cifar.cutout=4"]


def train(out, genotype, *extra):
    return main(["train", "--genotype", str(genotype), "--scale", "smoke", "--dataset", "synthetic",
                 "--out", str(out), "--device", "cpu", *TINY, *extra])


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("run")
    assert train(out, data_dir / "darts_v2.json") == 0
    return out


def test_train_writes_metrics(finished, data_dir):
    metrics = json.loads((finished / "metrics.json").read_text())
    assert REQUIRED <= set(metrics)
    assert metrics["scale"] == "smoke" and metrics["dataset"] == "synthetic" and metrics["epochs"] == 2
    assert metrics["loss"] == "cp" and metrics["precision"] == "binary" and metrics["kernel_source"] == "child"
    assert 0 <= metrics["test_error"] <= 100 and metrics["test_error"] == pytest.approx(100 - metrics["top1"])
    assert metrics["genotype_path"] == "tests/data/darts_v2.json"  # relative to the project root
    assert metrics["params"] > 0 and metrics["memory_mbit"] > 0 and metrics["flops_m"] > 0
    assert metrics["dataset_description"].startswith("synthetic")
    history = json.loads((finished / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2] and "loss_kernel" in history[0]
    assert (finished / "checkpoint.pt").is_file() and (finished / "config.json").is_file()


def test_resume_after_completion_is_a_no_op(finished, data_dir, capsys):
    before = (finished / "metrics.json").read_bytes()
    mtime = (finished / "metrics.json").stat().st_mtime_ns
    assert train(finished, data_dir / "darts_v2.json", "--resume") == 0
    assert "nothing to resume" in capsys.readouterr().out
    assert (finished / "metrics.json").read_bytes() == before
    assert (finished / "metrics.json").stat().st_mtime_ns == mtime


def test_existing_run_without_resume_is_refused(finished, data_dir, capsys):
    assert train(finished, data_dir / "darts_v2.json") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cpnas train: error:") and "--resume" in err and "\n" not in err


@pytest.mark.parametrize("content", ["{not json", '{"normal": [["conv_9x9", 0, 2]], "reduce": []}', "[]"])
def test_corrupt_genotype_is_one_line_exit_2(tmp_path, capsys, content):
    bad = tmp_path / "genotype.json"
    bad.write_text(content)
    assert train(tmp_path / "out", bad) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cpnas train: error:") and "\n" not in err and str(bad) in err
    assert not (tmp_path / "out").exists()


def test_cp_loss_with_real_precision_is_refused(tmp_path, data_dir, capsys):
    assert train(tmp_path / "out", data_dir / "darts_v2.json", "--precision", "real") == 2
    assert "--loss ce" in capsys.readouterr().err


def test_parent_reading_trains_and_uses_a_full_precision_parent(tmp_path, data_dir):
    out = tmp_path / "run"
    assert train(out, data_dir / "darts_v2.json", "--set", "loss.kernel_source=parent", "--set", "cifar.epochs=1") == 0
    metrics = json.loads((out / "metrics.json").read_text())
    parent = json.loads((out / "parent" / "metrics.json").read_text())
    assert metrics["kernel_source"] == "parent" and metrics["precision"] == "binary"
    assert parent["precision"] == "real" and parent["loss"] == "ce" and parent["weight_bits"] == 32


def test_train_or_load_caches_and_refuses_a_stale_run(tmp_path, data_dir):
    from cpnas.config import get_config
    from cpnas.errors import CpnasError
    from cpnas.runs import train_or_load
    from cpnas.genotype import load_genotype

    overrides = dict(pair.split("=", 1) for pair in TINY[1::2])
    cfg = get_config("smoke", {**overrides, "cifar.epochs": "1"})
    genotype = load_genotype(data_dir / "darts_v2.json")
    out = tmp_path / "run"
    first = train_or_load("tiny", genotype, cfg, dataset="synthetic", out=out, device="cpu")
    mtime = (out / "metrics.json").stat().st_mtime_ns
    assert train_or_load("tiny", genotype, cfg, dataset="synthetic", out=out, device="cpu") == first
    assert (out / "metrics.json").stat().st_mtime_ns == mtime and first["name"] == "tiny"
    changed = get_config("smoke", {**overrides, "cifar.epochs": "2"})
    with pytest.raises(CpnasError, match=r"another genotype or configuration \(train.epochs: 1 vs 2\)"):
        train_or_load("tiny", genotype, changed, dataset="synthetic", out=out, device="cpu")


def test_resume_of_a_finished_run_with_another_genotype_is_refused(finished, data_dir, tmp_path, capsys):
    from cpnas.genotype import DARTS_V2, Genotype

    other = Genotype.from_dict({**DARTS_V2.to_dict(), "normal": [["skip_connect", 0, 2], ["skip_connect", 1, 2],
                                                                  ["max_pool_3x3", 0, 3], ["skip_connect", 1, 3]]})
    path = other.save(tmp_path / "other.json")
    assert train(finished, path, "--resume") == 2
    err = capsys.readouterr().err.strip()
    assert "another genotype" in err and "\n" not in err


def test_out_naming_a_file_is_refused_before_data_loads(tmp_path, data_dir, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(SystemExit) as exc:
        train(f, data_dir / "darts_v2.json")
    assert exc.value.code == 2 and "is a file" in capsys.readouterr().err


def test_sigterm_ends_a_cli_run_like_ctrl_c(tmp_path, data_dir):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "cpnas", "train", "--genotype", str(data_dir / "darts_v2.json"), "--scale", "smoke",
           "--dataset", "synthetic", "--out", str(out), "--device", "cpu", *TINY, "--set", "cifar.epochs=50"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while not (out / "checkpoint.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted; rerun with --resume" in err and "Traceback" not in err


def test_eval_rebuilds_the_trained_network_and_matches_its_metrics(finished, capsys):
    import json as _json

    assert main(["eval", "--checkpoint", str(finished), "--json", "--device", "cpu"]) == 0
    res = _json.loads(capsys.readouterr().out)
    stored = _json.loads((finished / "metrics.json").read_text())
    assert res["top1"] == pytest.approx(stored["top1"]) and res["test_images"] == stored["test_images"]
    assert res["params_m"] == pytest.approx(stored["params_m"]) and res["flops_m"] == pytest.approx(stored["flops_m"])


def test_eval_of_a_folder_without_checkpoint_is_one_line(tmp_path, capsys):
    assert main(["eval", "--checkpoint", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no checkpoint.pt" in err and "\n" not in err


def _snapshot(folder):
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def no_data(monkeypatch):
    """Any data load fails the test: a refusal must come before the data."""
    import cpnas.data

    def boom(*a, **k):
        raise AssertionError("data was loaded")

    monkeypatch.setattr(cpnas.data, "load_dataset", boom)


@pytest.fixture
def unfinished(finished, tmp_path):
    """A copy of the finished run without its metrics.json: a checkpoint that --resume continues."""
    import shutil

    out = tmp_path / "unfinished"
    shutil.copytree(finished, out)
    (out / "metrics.json").unlink()
    return out


@pytest.mark.parametrize("change", [["--seed", "1"], ["--size", "medium"], ["--loss", "ce", "--precision", "real"],
                                    ["--set", "cifar.epochs=3"], ["--scale", "cpu"], ["genotype"]])
def test_resume_with_another_identity_is_refused_before_data_loads_and_writes(unfinished, data_dir, tmp_path,
                                                                              no_data, capsys, change):
    genotype = data_dir / "darts_v2.json"
    if change == ["genotype"]:
        genotype, change = data_dir / "pcdarts_cifar.json", []
    before = _snapshot(unfinished)
    args = ["train", "--genotype", str(genotype), "--scale", "smoke", "--dataset", "synthetic", "--out",
            str(unfinished), "--device", "cpu", *TINY, *change, "--resume"]
    if "--scale" in change:  # the last --scale wins
        args.remove("smoke"), args.remove("--scale")
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cpnas train: error:") and "another run" in err and "\n" not in err
    assert _snapshot(unfinished) == before


def test_a_training_resumed_into_a_search_folder_is_refused(tmp_path, data_dir, no_data, capsys):
    import torch

    out = tmp_path / "search"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"config": {"scale": "smoke"}, "run": {"strategy": "cpnas"}}))
    torch.save({"strategy": {}, "run_args": {"strategy": "cpnas"}, "config": {}, "epoch": 0, "history": [],
                "elapsed": 1.0, "torch_rng": torch.get_rng_state()}, out / "checkpoint.pt")
    (out / "genotype.json").write_text((data_dir / "darts_v2.json").read_text())
    before = _snapshot(out)
    for resume in (["--resume"], []):
        assert train(out, data_dir / "darts_v2.json", *resume) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("cpnas train: error:") and "\n" not in err
        assert _snapshot(out) == before


@pytest.mark.parametrize("obj", ["tensor", 3])
def test_a_checkpoint_that_is_not_a_dict_is_one_line_in_resume_and_eval(unfinished, data_dir, no_data, capsys, obj):
    import torch

    torch.save(torch.zeros(2) if obj == "tensor" else obj, unfinished / "checkpoint.pt")
    assert train(unfinished, data_dir / "darts_v2.json", "--resume") == 2
    err = capsys.readouterr().err.strip()
    assert "not a cpnas checkpoint" in err and "\n" not in err
    assert main(["eval", "--checkpoint", str(unfinished), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a cpnas checkpoint" in err and "\n" not in err


def test_eval_of_a_named_checkpoint_file_evaluates_that_file(finished, tmp_path, capsys):
    import shutil

    import torch

    run = tmp_path / "run"
    shutil.copytree(finished, run)
    shutil.copy(run / "checkpoint.pt", run / "epoch1.pt")
    torch.save(7, run / "broken.pt")
    assert main(["eval", "--checkpoint", str(run / "broken.pt"), "--device", "cpu"]) == 2  # that file, not the folder's
    assert "broken.pt" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", str(run / "epoch1.pt"), "--json", "--device", "cpu"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["checkpoint"].endswith("epoch1.pt") and res["stored_top1"] is None  # metrics.json is checkpoint.pt's
