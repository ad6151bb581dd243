"""Data-parallel runs: 2 gloo processes under torchrun against 1 process, same global batch.

Every run forces the kernel forms (``CPNAS_FORMS``): the memory format and the dilated-conv
form are chosen by timing, per batch shape, and a 1-bit network's output depends on them
(a different summation order moves values across sign's threshold), so a per-rank batch
could otherwise pick other forms than the one-process batch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cpnas import distributed
from cpnas import data

SEARCH = ["--strategy", "cpnas", "--scale", "smoke", "--dataset", "synthetic", "--seed", "3", "--device", "cpu"]
# 4 cells of 4 channels on 16×16 images; 20 training images (one global batch of 20 per
# epoch: 10 per rank) and 10 scoring images; T = 1 (35 epochs). The weights are frozen
# (SGD at lr 1e-30 moves no float32 weight): see test_search_two_processes_match_one.
SEARCH_SET = {"search.layers": 4, "search.init_channels": 4, "search.reduction_layers": "1,2",
              "search.batch_size": 32, "search.train_fraction": 0.05, "search.score_fraction": 0.025,
              "data.synthetic_train": 400, "search.T": 1, "cifar.image_size": 16,
              "search.calibration_batches": 1, "search.optimizer": "sgd", "search.lr": 1e-30}
TRAIN_SET = {"cifar.layers": 3, "cifar.channels_small": 4, "cifar.image_size": 16, "cifar.batch_size": 16,
             "cifar.epochs": 2, "cifar.train_fraction": 1.0, "cifar.test_fraction": 1.0,
             "data.synthetic_train": 48, "data.synthetic_test": 16}
ENV = {"CPNAS_PROGRESS": "0", "OMP_NUM_THREADS": "1", "CPNAS_FORMS": "dilated_conv=plain,memory_format=contiguous"}


def _sets(overrides: dict) -> list[str]:
    return [a for k, v in overrides.items() for a in ("--set", f"{k}={v}")]


def _run(args: list[str], nproc: int, timeout: int = 600) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "cpnas"] if nproc == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m", "cpnas"]
    proc = subprocess.run([*launcher, "-q", *args], env={**os.environ, **ENV}, capture_output=True, text=True,
                          timeout=timeout, cwd=Path(__file__).parents[1])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _files(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir())


@pytest.mark.slow
def test_search_two_processes_match_one(tmp_path):
    """Same draws, sharded scoring with summed counts, same removals: the genotype of one process.

    The weights are frozen so that the comparison is exact: a 1-bit supernet is chaotic in
    float32 (one gradient summed in another order moves some latent weight or activation
    across sign's threshold, and an accuracy on 10 images is a count), so with learning the
    two runs part after a few draws however correct the averaging is; the gradient
    averaging is checked by the training test below. With BN per rank the training losses
    are the same 1-bit network under statistics of 10 instead of 20 images (measured
    differences up to 0.2; bound 0.5 per epoch, 0.15 on average); scoring re-estimates BN
    on whole batches on every rank, so A_C and A_P are exactly one process's.
    """
    args = [*SEARCH, *_sets(SEARCH_SET)]
    one = _run(["search", *args, "--out", str(tmp_path / "one")], 1)
    two = _run(["search", *args, "--out", str(tmp_path / "two")], 2)
    assert two.stdout.count("genotype:") == 1  # rank 0 prints, once
    a, b = (json.loads((tmp_path / d / "history.json").read_text()) for d in ("one", "two"))
    assert len(a) == len(b) == 35
    gaps = []
    for ra, rb in zip(a, b):
        assert ra["path"] == rb["path"]  # same draw on every rank as in one process
        assert (ra["A_C"], ra["A_P"], ra["score_images"]) == (rb["A_C"], rb["A_P"], rb["score_images"])
        gaps += [abs(ra[k] - rb[k]) for k in ("child_train_loss", "parent_train_loss")]
    assert max(gaps) < 0.5 and sum(gaps) / len(gaps) < 0.15
    assert (tmp_path / "one" / "genotype.json").read_text() == (tmp_path / "two" / "genotype.json").read_text()
    assert _files(tmp_path / "one") == _files(tmp_path / "two")  # one set of artifacts, no stray temp files
    config = json.loads((tmp_path / "two" / "config.json").read_text())["run"]
    assert config["world_size"] == 2 and config["sync_bn"] is False


@pytest.mark.slow
def test_a_two_process_search_killed_part_way_resumes_in_one_process(tmp_path):
    """Resume under another N: 2 processes stopped (SIGTERM to torchrun) after a few checkpoints, then
    ``--resume`` by 1 process, take every draw, A_C and A_P and the genotype of an uninterrupted
    1-process run (weights frozen, as above): the checkpoint holds no rank state."""
    import signal
    import time

    args = [*SEARCH, *_sets(SEARCH_SET)]
    out = tmp_path / "killed"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "cpnas"]
    proc = subprocess.Popen([*launcher, "-q", "search", *args, "--out", str(out)], env={**os.environ, **ENV},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=Path(__file__).parents[1])
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            history = out / "history.json"
            if history.exists() and len(json.loads(history.read_text() or "[]")) >= 4:
                break
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    done = len(json.loads((out / "history.json").read_text()))
    assert 4 <= done < 35 and not (out / "complete.json").exists()
    _run(["search", *args, "--out", str(out), "--resume"], 1)
    _run(["search", *args, "--out", str(tmp_path / "one")], 1)
    a, b = (json.loads((d / "history.json").read_text()) for d in (out, tmp_path / "one"))
    assert [(r["path"], r["A_C"], r["A_P"]) for r in a] == [(r["path"], r["A_C"], r["A_P"]) for r in b]
    assert (out / "genotype.json").read_text() == (tmp_path / "one" / "genotype.json").read_text()


@pytest.mark.slow
def test_train_two_processes_match_one(tmp_path, data_dir):
    """Gradient averaging: 2 × 8 images per step with SyncBatchNorm train like 1 × 16.

    A full-precision network (``--precision real --loss ce``), so that the comparison is not
    at the mercy of sign's threshold. The tolerance, 1e-2 on the mean training loss (~3),
    covers float32 reduction order — two half-batch gradient means summed and halved vs one
    full-batch mean, BN statistics from two all-reduced partial sums vs one pass — as Adam
    amplifies it: its first steps move every weight by ±lr whatever the gradient's size, so
    an element whose gradient is float noise around 0 can step either way (measured
    difference 1.2e-3 after 3 steps). Test accuracy (16 images) may differ by one image.
    """
    args = ["train", "--genotype", str(data_dir / "darts_v2.json"), "--scale", "smoke", "--dataset", "synthetic",
            "--device", "cpu", "--precision", "real", "--loss", "ce", *_sets(TRAIN_SET)]
    _run([*args, "--out", str(tmp_path / "one")], 1)
    _run([*args, "--sync-bn", "--out", str(tmp_path / "two")], 2)
    a, b = (json.loads((tmp_path / d / "history.json").read_text()) for d in ("one", "two"))
    assert [r["epoch"] for r in b] == [1, 2] and all(r["world_size"] == 2 for r in b)
    for ra, rb in zip(a, b):
        assert rb["train_loss"] == pytest.approx(ra["train_loss"], abs=1e-2)
        assert rb["test"]["n"] == ra["test"]["n"] == 16  # the shards cover the test set once
        assert abs(rb["test_acc"] - ra["test_acc"]) <= 1 / 16 + 1e-9
    ma, mb = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("one", "two"))
    assert mb["test_images"] == ma["test_images"] and abs(mb["top1"] - ma["top1"]) <= 100 / 16 + 1e-6
    assert _files(tmp_path / "one") == _files(tmp_path / "two")


# --------------------------------------------------------------------------- single-process units


def test_helpers_are_the_identity_in_one_process():
    assert not distributed.is_initialized() and distributed.world_size() == 1 and distributed.is_main()
    assert distributed.all_reduce_sum([1, 2.5]) == [1.0, 2.5]
    t = torch.ones(3)
    distributed.all_reduce_mean([t])
    assert torch.equal(t, torch.ones(3))
    net = torch.nn.Linear(2, 2)
    assert distributed.wrap(net) is net and distributed.broadcast_object("x") == "x"
    loader = data.TensorLoader(data.synthetic_images(8), 4)
    assert distributed.shard_loader(loader) is loader


def test_shard_indices_partition():
    assert [list(distributed.shard_indices(10, shard=r, num_shards=3)) for r in range(3)] == \
        [[0, 3, 6], [1, 4, 7], [2, 5, 8]]
    uneven = [list(distributed.shard_indices(10, shard=r, num_shards=3, even=False)) for r in range(3)]
    assert sorted(sum(uneven, [])) == list(range(10))


@pytest.mark.parametrize("cutout", [0, 6])
def test_shards_of_a_loader_are_the_one_process_batches(cutout):
    """Batch k of N shards, interleaved, is batch k of one process: same images, same augmentation."""
    d = data.synthetic_images(40, seed=0)
    one = data.TensorLoader(d, 8, shuffle=True, augment=True, cutout=cutout, seed=5, epoch=2)
    shards = [one.sharded(r, 2) for r in range(2)]
    assert all(s.batch_size == 4 and s.global_batch_size == 8 and len(s) == len(one) for s in shards)
    for (x, y), (x0, y0), (x1, y1) in zip(one, *shards):
        assert torch.equal(y[0::2], y0) and torch.equal(y[1::2], y1)
        assert torch.equal(x[0::2], x0) and torch.equal(x[1::2], x1)


def test_uneven_evaluation_shards_cover_every_sample_once():
    d = data.synthetic_images(17, seed=0)
    d = data.ImageTensors(images=d.images, labels=torch.arange(17), classes=d.classes, description="", name="t")
    loader = data.TensorLoader(d, 4)
    seen = torch.cat([y for r in range(2) for _, y in loader.sharded(r, 2, even=False)])
    assert sorted(seen.tolist()) == list(range(17))


def test_per_rank_batch_must_divide(monkeypatch):
    from cpnas.errors import CpnasError

    monkeypatch.setattr(distributed, "world_size", lambda: 3)
    assert distributed.per_rank_batch(12) == 4
    with pytest.raises(CpnasError, match="multiple of 3"):
        distributed.per_rank_batch(32)


def test_peer_failure_is_recognised_only_under_torchrun(monkeypatch):
    err = RuntimeError("[../gloo/transport/tcp/pair.cc:534] Connection closed by peer [127.0.0.1]:1234")
    monkeypatch.delenv("RANK", raising=False)
    assert not distributed.peer_failure(err)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert distributed.peer_failure(err) and not distributed.peer_failure(ValueError("x"))
    assert "\n" not in distributed.brief(RuntimeError("a\nb"))
