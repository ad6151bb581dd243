"""The one checkpointed epoch driver: resume, RNG state (CPU and CUDA), the non-finite guard, its users."""

from __future__ import annotations

import pytest
import torch

from cpnas.driver import CHECKPOINT, HISTORY, EpochDriver, NonFiniteLossError
from cpnas.errors import CpnasError
from cpnas.io import load_checkpoint, read_json, save_checkpoint


class Counter:
    """A caller with state (a running sum) whose epochs draw from the global RNGs."""

    def __init__(self, device: str = "cpu", stop_at: int | None = None, error: BaseException | None = None):
        self.total, self.device, self.stop_at, self.error = 0.0, device, stop_at, error

    def run_epoch(self, epoch: int) -> dict:
        if epoch == self.stop_at:
            raise self.error
        cpu = torch.rand(()).item()
        draw = torch.rand((), device=self.device).item()
        self.total += draw
        return {"epoch": epoch + 1, "cpu": cpu, "draw": draw, "total": self.total}

    def state_dict(self) -> dict:
        return {"total": self.total}

    def load_state_dict(self, state: dict) -> None:
        self.total = state["total"]


def drive(out, counter: Counter, *, resume: bool = False, epochs: int = 4):
    return EpochDriver(out).run(counter.run_epoch, epochs, state_dict=counter.state_dict,
                                load_state_dict=counter.load_state_dict, resume=resume, wall_clock_key="wall")


def untimed(history):
    return [{k: v for k, v in r.items() if k != "wall"} for r in history]


def interrupted_then_resumed(tmp_path, device: str):
    torch.manual_seed(0)
    if device == "cuda":
        torch.cuda.manual_seed_all(0)
    full = drive(tmp_path / "full", Counter(device))
    torch.manual_seed(0)
    if device == "cuda":
        torch.cuda.manual_seed_all(0)
    with pytest.raises(KeyboardInterrupt):
        drive(tmp_path / "cut", Counter(device, stop_at=2, error=KeyboardInterrupt()))
    assert load_checkpoint(tmp_path / "cut" / CHECKPOINT)["epoch"] == 1
    torch.manual_seed(12345)  # a fresh process: every RNG elsewhere
    if device == "cuda":
        torch.cuda.manual_seed_all(12345)
    resumed = drive(tmp_path / "cut", Counter(device), resume=True)
    return full, resumed


def test_resume_restores_state_rng_history_and_wall_clock(tmp_path):
    full, resumed = interrupted_then_resumed(tmp_path, "cpu")
    assert resumed.resumed_from == 2 and full.resumed_from is None
    assert untimed(resumed.history) == untimed(full.history)
    assert [r["wall"] for r in resumed.history] == sorted(r["wall"] for r in resumed.history)
    assert resumed.elapsed == resumed.history[-1]["wall"]
    assert untimed(read_json(tmp_path / "cut" / HISTORY)) == untimed(full.history)
    state = load_checkpoint(tmp_path / "cut" / CHECKPOINT)
    assert state["epoch"] == 3 and state["total"] == full.history[-1]["total"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_resume_restores_the_cuda_rng(tmp_path):
    full, resumed = interrupted_then_resumed(tmp_path, "cuda")
    assert load_checkpoint(tmp_path / "cut" / CHECKPOINT)["cuda_rng"] is not None
    assert untimed(resumed.history) == untimed(full.history)


def test_cuda_rng_states_are_saved_and_restored(tmp_path, monkeypatch):
    """Without a GPU: torch.cuda's RNG calls are faked, to show the driver saves and restores every device's state."""
    states = [torch.tensor([1, 2], dtype=torch.uint8), torch.tensor([3, 4], dtype=torch.uint8)]
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: states)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # resumed on a machine with fewer GPUs
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: restored.append((state, device)))
    with pytest.raises(KeyboardInterrupt):
        drive(tmp_path, Counter(stop_at=1, error=KeyboardInterrupt()))
    assert [s.tolist() for s in load_checkpoint(tmp_path / CHECKPOINT)["cuda_rng"]] == [[1, 2], [3, 4]]
    drive(tmp_path, Counter(), resume=True)
    assert [(s.tolist(), d) for s, d in restored] == [([1, 2], 0)]


def test_non_finite_loss_keeps_the_last_checkpoint_with_one_message(tmp_path):
    bad = NonFiniteLossError("non-finite loss (nan) during train")
    with pytest.raises(NonFiniteLossError, match=r"^epoch 1/4: non-finite loss \(nan\) during train \(no checkpoint "
                                                 r"was written yet\)$"):
        drive(tmp_path / "first", Counter(stop_at=0, error=bad))
    assert not (tmp_path / "first" / CHECKPOINT).exists()
    out = tmp_path / "third"
    with pytest.raises(NonFiniteLossError) as err:
        drive(out, Counter(stop_at=2, error=bad))
    assert str(err.value) == (f"epoch 3/4: non-finite loss (nan) during train (the checkpoint of epoch 2 in "
                              f"{out / CHECKPOINT} is kept)")
    assert load_checkpoint(out / CHECKPOINT)["epoch"] == 1


def test_a_foreign_checkpoint_is_refused_in_one_line(tmp_path):
    save_checkpoint(tmp_path / CHECKPOINT, {"model": {}, "epoch": 3})
    with pytest.raises(CpnasError, match=r"not a checkpoint this version can resume \(no history, elapsed, "
                                         r"torch_rng\); start the run again into a new --out"):
        drive(tmp_path, Counter(), resume=True)


def test_without_out_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = drive(None, Counter())
    assert len(result.history) == 4 and not list(tmp_path.iterdir())


def test_search_and_training_share_the_driver(tmp_path, monkeypatch):
    """``fit`` and ``run_search`` both go through :meth:`EpochDriver.run` and write its checkpoint layout."""
    from torch import nn

    from cpnas.config import get_config
    from cpnas.data import TensorLoader, synthetic_images
    from cpnas.search import run_search
    from cpnas.train import cross_entropy_loss, fit

    calls = []
    original = EpochDriver.run

    def spy(self, run_epoch, total_epochs, **kwargs):
        calls.append((self.out.name, total_epochs, kwargs["wall_clock_key"]))
        return original(self, run_epoch, total_epochs, **kwargs)

    monkeypatch.setattr(EpochDriver, "run", spy)
    data = synthetic_images(32, seed=0, image_size=8)
    loader = TensorLoader(data, 16, shuffle=True)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
    tcfg = get_config("smoke", {"cifar.epochs": 2}).cifar
    fit(model, loader, loader, tcfg, cross_entropy_loss(), device=torch.device("cpu"), out=tmp_path / "fit")
    cfg = get_config("smoke", {"search.layers": 4, "search.init_channels": 4, "search.reduction_layers": "1,2",
                               "search.batch_size": 32, "search.train_fraction": 0.05,
                               "search.score_fraction": 0.025, "data.synthetic_train": 400, "search.T": 1})
    run_search("pcdarts", cfg, dataset="synthetic", seed=0, out=tmp_path / "search", device="cpu")
    assert calls == [("fit", 2, "wall_clock_s"), ("search", 3, "wall_clock")]
    for run in ("fit", "search"):
        state = load_checkpoint(tmp_path / run / CHECKPOINT)
        assert {"epoch", "history", "elapsed", "torch_rng", "cuda_rng"} <= set(state)
        assert state["history"] == read_json(tmp_path / run / HISTORY)
    # a training run's checkpoint is not taken for a search's
    with pytest.raises(CpnasError, match="not a search checkpoint"):
        run_search("pcdarts", cfg, dataset="synthetic", seed=0, out=tmp_path / "fit", resume=True, device="cpu")


def test_the_cpu_seconds_of_a_resumed_run_add_up_over_its_sessions(tmp_path):
    import time

    def busy(_epoch):
        t = time.process_time()
        while time.process_time() - t < 0.05:
            pass
        return {}

    cut = EpochDriver(tmp_path / "cut")
    first = cut.run(busy, 2, state_dict=dict, load_state_dict=lambda s: None)
    resumed = EpochDriver(tmp_path / "cut").run(busy, 4, state_dict=dict, load_state_dict=lambda s: None,
                                                 resume=True)
    assert first.cpu_s >= 0.1 and resumed.cpu_s >= first.cpu_s + 0.1
    # a checkpoint written before the record existed resumes, with the total unknown
    state = load_checkpoint(tmp_path / "cut" / CHECKPOINT)
    del state["cpu_elapsed"]
    save_checkpoint(tmp_path / "cut" / CHECKPOINT, state)
    assert EpochDriver(tmp_path / "cut").run(busy, 5, state_dict=dict, load_state_dict=lambda s: None,
                                              resume=True).cpu_s is None
