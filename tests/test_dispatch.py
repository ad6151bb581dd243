"""cpnas.dispatch: forms chosen by measurement, cached per machine, forced by CPNAS_FORMS."""

from __future__ import annotations

import json
import time

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from cpnas import dispatch
from cpnas.errors import CpnasError


@pytest.fixture(autouse=True)
def fresh(fresh_dispatch):
    """Every test starts from an empty dispatch (conftest's ``fresh_dispatch``)."""
    yield


def _runs(slow: str, calls: list[str]):
    def build():
        def make(name):
            def go():
                calls.append(name)
                if name == slow:
                    time.sleep(0.02)
            return go
        return {form: make(form) for form in dispatch.FORMS["dilated_conv"]}
    return build


@pytest.mark.parametrize("slow, fast", [("plain", "space_to_batch"), ("space_to_batch", "plain")])
def test_the_faster_form_is_chosen_and_cached_on_disk(slow, fast):
    calls: list[str] = []
    assert dispatch.choose("dilated_conv", ("k",), _runs(slow, calls)) == fast
    assert set(calls) == {"plain", "space_to_batch"}
    assert dispatch.timings()  # what was measured is reported
    cached = json.loads(dispatch.cache_path().read_text())
    assert list(cached.values()) == [fast]
    # a new process (memory forgotten) reads the disk cache and measures nothing
    dispatch.reset()
    calls.clear()
    assert dispatch.choose("dilated_conv", ("k",), _runs(fast, calls)) == fast
    assert calls == []
    assert dispatch.chosen() == {"dilated_conv": {"('k',)": fast}}


def test_forced_form_is_neither_measured_nor_cached(monkeypatch):
    monkeypatch.setenv("CPNAS_FORMS", "dilated_conv=plain")
    calls: list[str] = []
    assert dispatch.choose("dilated_conv", ("k",), _runs("plain", calls)) == "plain"
    assert calls == [] and not dispatch.cache_path().exists()


@pytest.mark.parametrize("value", ["dilated_conv=fast", "nonsense", "warp=plain"])
def test_bad_forced_forms_are_refused_in_one_line(monkeypatch, value):
    monkeypatch.setenv("CPNAS_FORMS", value)
    with pytest.raises(CpnasError, match="CPNAS_FORMS"):
        dispatch.choose("dilated_conv", ("k",), None)


def test_nothing_is_measured_under_a_flop_counter():
    calls: list[str] = []
    with FlopCounterMode(display=False):
        form = dispatch.choose("dilated_conv", ("k",), _runs("plain", calls))
    assert calls == [] and form == dispatch.FORMS["dilated_conv"][0]


def test_corrupt_cache_costs_a_measurement_not_an_error():
    dispatch.cache_path().parent.mkdir(parents=True)
    dispatch.cache_path().write_text("{not json")
    calls: list[str] = []
    assert dispatch.choose("dilated_conv", ("k",), _runs("plain", calls)) == "space_to_batch"
    assert calls


def test_memory_format_choice_leaves_the_rng_and_the_model_untouched():
    from cpnas.genotype import DARTS_V2
    from cpnas.networks import NetworkCIFAR, memory_format_for

    torch.manual_seed(0)
    net = NetworkCIFAR(DARTS_V2, C=8, num_classes=10, layers=3, auxiliary=False)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    state = torch.get_rng_state()
    fmt = memory_format_for(net, torch.device("cpu"), input_shape=(4, 3, 16, 16))
    assert fmt in (torch.channels_last, torch.contiguous_format)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert set(dispatch.chosen()["memory_format"].values()) == {"channels_last" if fmt == torch.channels_last
                                                                 else "contiguous"}


# --- a run's record of its forms: --resume and another machine take the same ------------------------------------


def _never_measure():
    pytest.fail("a recorded form was measured again")


@pytest.mark.parametrize("form", ["plain", "space_to_batch"])
def test_resume_takes_the_forms_the_checkpoint_recorded(tmp_path, form):
    from cpnas.driver import EpochDriver
    from cpnas.io import save_checkpoint

    key = ("dil", 8, 16)
    record = {"choices": {dispatch._skey("dilated_conv", key): form}, "forced": {}}
    save_checkpoint(tmp_path / "checkpoint.pt", {"epoch": 0, "history": [{}], "elapsed": 1.0,
                                                 "torch_rng": torch.get_rng_state(), "kernel_forms": record})
    seen = []
    EpochDriver(tmp_path).run(lambda e: {}, 2, state_dict=dict, resume=True,
                              load_state_dict=lambda s: seen.append(dispatch.choose("dilated_conv", key,
                                                                                    _never_measure)))
    assert seen == [form]
    written = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["kernel_forms"]
    assert written["choices"][dispatch._skey("dilated_conv", key)] == form  # recorded again for the next resume


def test_cpnas_forms_takes_another_machines_record(tmp_path, monkeypatch):
    key = ("dil", 8, 16)
    skey = dispatch._skey("dilated_conv", key)
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"top1": 1.0, "kernel_forms_record": {"choices": {skey: "space_to_batch"},
                                                                          "forced": {"sign": "torch"}}}))
    monkeypatch.setenv("CPNAS_FORMS", f"@{metrics}")
    assert dispatch.forced() == {"sign": "torch"}  # what that run forced is forced here too
    assert dispatch.choose("dilated_conv", key, _never_measure) == "space_to_batch"
    assert dispatch.record()["choices"][skey] == "space_to_batch"
    bad = tmp_path / "other.json"
    bad.write_text("{}")
    monkeypatch.setenv("CPNAS_FORMS", f"@{bad}")
    with pytest.raises(CpnasError, match="no kernel_forms_record"):
        dispatch.forced()
