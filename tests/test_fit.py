"""The one training loop ``fit``: schedule, checkpoints, exact resume, non-finite losses."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from cpnas.binary import BINARY
from cpnas.config import LossConfig, TrainConfig
from cpnas.data import TensorLoader, synthetic_images
from cpnas.errors import CpnasError
from cpnas.io import load_checkpoint
from cpnas.losses import CPLoss
from cpnas.train import CHECKPOINT, HISTORY, NonFiniteLossError, cosine_lr, cross_entropy_loss, fit

DEVICE = torch.device("cpu")


class Small(nn.Module):
    """stem → 1-bit conv → BN → global pooling → classifier; returns (logits, None) like the eval nets."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))
        self.cell = nn.Sequential(BINARY.conv(8, 8, 3, padding=1), nn.BatchNorm2d(8))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(8, 10)
        self.drop_path_prob = 0.0

    def forward(self, x):
        s = self.stem(x)
        s = s + self.cell(s)
        return self.classifier(torch.flatten(self.global_pooling(s), 1)), None


def recipe(epochs: int = 3) -> TrainConfig:
    return dataclasses.replace(TrainConfig(), epochs=epochs, batch_size=16, lr=0.05, drop_path=0.2)


def loaders(seed: int = 0):
    train = synthetic_images(48, image_size=8, split="train")
    test = synthetic_images(32, image_size=8, split="test")
    return (TensorLoader(train, 16, shuffle=True, augment=True, cutout=2, seed=seed),
            TensorLoader(test, 16))


def run(out, *, loss_fn=None, resume=False, epochs=3, cp=False):
    torch.manual_seed(0)
    model = Small()
    if loss_fn is None:
        loss_fn = CPLoss(model, num_classes=10, config=LossConfig()) if cp else cross_entropy_loss()
    elif cp:
        inner = CPLoss(model, num_classes=10, config=LossConfig())
        loss_fn = loss_fn(inner)
    train, test = loaders()
    result = fit(model, train, test, recipe(epochs), loss_fn, device=DEVICE, out=out, resume=resume,
                 run_info={"name": "small"})
    return model, result


def without_timing(history):
    return [{k: v for k, v in r.items() if k not in ("seconds", "wall_clock_s", "test")} for r in history]


def test_history_schedule_and_checkpoint(tmp_path):
    model, result = run(tmp_path)
    h = result.history
    assert [r["epoch"] for r in h] == [1, 2, 3]
    assert [r["lr"] for r in h] == [cosine_lr(0.05, 0.0, e, 3) for e in range(3)]
    assert [r["drop_path_prob"] for r in h] == pytest.approx([0.0, 0.2 / 3, 0.4 / 3])
    for r in h:
        assert {"train_loss", "train_acc", "test_acc", "test_top1", "test_top5", "seconds"} <= set(r)
        assert math.isfinite(r["train_loss"]) and 0 <= r["test_acc"] <= 1
    assert result.test["top1"] == h[-1]["test_acc"]
    state = load_checkpoint(tmp_path / CHECKPOINT)
    assert state["epoch"] == 2 and len(state["history"]) == 3
    assert (tmp_path / HISTORY).is_file()


class Interrupt:
    """Wrap a loss: raise ``exc`` (or return NaN) at call number ``at``; snapshot the checkpoint then."""

    def __init__(self, inner, at: int, *, nan: bool = False, ckpt=None) -> None:
        self.inner, self.at, self.nan, self.ckpt, self.calls, self.snapshot = inner, at, nan, ckpt, 0, None

    def __call__(self, output, target):
        self.calls += 1
        value = self.inner(output, target)
        if self.calls == self.at:
            if self.ckpt is not None:
                self.snapshot = self.ckpt.read_bytes()
            if not self.nan:
                raise KeyboardInterrupt
            return value * float("nan")
        return value

    def __getattr__(self, name):  # state_dict / pop_stats of a wrapped CP loss
        return getattr(self.inner, name)


@pytest.mark.parametrize("cp", [False, True], ids=["ce", "cp"])
def test_resume_equals_an_uninterrupted_run(tmp_path, cp):
    full_model, full = run(tmp_path / "full", cp=cp)
    # killed during epoch 3 (3 batches per epoch: call 7 is its first batch)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut", loss_fn=lambda inner: Interrupt(inner, 7), cp=True) if cp else \
            run(tmp_path / "cut", loss_fn=Interrupt(cross_entropy_loss(), 7))
    assert load_checkpoint(tmp_path / "cut" / CHECKPOINT)["epoch"] == 1
    resumed_model, resumed = run(tmp_path / "cut", resume=True, cp=cp)
    assert resumed.resumed_from == 2
    assert without_timing(resumed.history) == without_timing(full.history)
    for (k, a), b in zip(full_model.state_dict().items(), resumed_model.state_dict().values()):
        assert torch.equal(a, b), k


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    ckpt = tmp_path / CHECKPOINT
    bad = Interrupt(cross_entropy_loss(), 5, nan=True, ckpt=ckpt)  # second batch of epoch 2
    with pytest.raises(CpnasError, match=r"epoch 2/3: non-finite loss.*checkpoint of epoch 1") as err:
        run(tmp_path, loss_fn=bad)
    assert isinstance(err.value, NonFiniteLossError)
    assert ckpt.read_bytes() == bad.snapshot
    state = load_checkpoint(ckpt)
    assert state["epoch"] == 0 and len(state["history"]) == 1


def test_resume_refuses_another_run(tmp_path):
    torch.manual_seed(0)
    train, test = loaders()
    model = Small()
    fit(model, train, test, recipe(1), cross_entropy_loss(), device=DEVICE, out=tmp_path, run_info={"name": "a"})
    with pytest.raises(CpnasError, match="another run"):
        fit(Small(), train, test, recipe(1), cross_entropy_loss(), device=DEVICE, out=tmp_path, resume=True,
            run_info={"name": "b"})
