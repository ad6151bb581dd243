"""Executed notebooks keep no wall-clock marks, so re-running them from the same runs rewrites no committed byte."""

from __future__ import annotations

import json

import pytest

from cpnas.errors import CpnasError
from cpnas.nbclean import clean_file, dumps, main, strip_timing


def executed_notebook(day: str) -> dict:
    """A notebook as papermill writes it: its own and each cell's run times, and the kernel's message times."""
    cell = {"cell_type": "code", "id": "c1", "source": ["1 + 1"], "execution_count": 1,
            "outputs": [{"output_type": "execute_result", "execution_count": 1, "metadata": {},
                         "data": {"text/plain": ["2"]}}],
            "metadata": {"tags": ["parameters"],
                         "papermill": {"start_time": f"{day}T08:00:01", "end_time": f"{day}T08:00:02",
                                       "duration": 1.0, "exception": False, "status": "completed"},
                         "execution": {"iopub.execute_input": f"{day}T08:00:01",
                                       "shell.execute_reply": f"{day}T08:00:02"}}}
    return {"nbformat": 4, "nbformat_minor": 5, "cells": [
        {"cell_type": "markdown", "id": "m1", "metadata": {}, "source": ["# ünïcode title"]}, cell],
        "metadata": {"papermill": {"start_time": f"{day}T08:00:00", "end_time": f"{day}T08:01:00",
                                   "duration": 60.0, "exception": None, "input_path": "a.ipynb",
                                   "output_path": "a.ipynb", "parameters": {}, "version": "2.7.0"}}}


def test_two_runs_at_different_times_give_the_same_bytes(tmp_path):
    paths = []
    for day in ("2001-01-01", "2002-02-02"):
        path = tmp_path / f"{day}.ipynb"
        path.write_text(dumps(executed_notebook(day)), encoding="utf-8")
        assert clean_file(path)
        paths.append(path)
    first, second = (p.read_text(encoding="utf-8") for p in paths)
    assert first == second and "2001" not in first
    assert not clean_file(paths[0])  # already clean: left as it is


def test_what_the_run_computed_stays():
    nb = strip_timing(executed_notebook("2001-01-01"))
    cell = nb["cells"][1]
    assert cell["outputs"][0]["data"] == {"text/plain": ["2"]} and cell["execution_count"] == 1
    assert cell["metadata"] == {"papermill": {"exception": False, "status": "completed"}, "tags": ["parameters"]}
    assert nb["metadata"]["papermill"] == {"exception": None, "input_path": "a.ipynb", "output_path": "a.ipynb",
                                           "parameters": {}, "version": "2.7.0"}


def test_the_text_is_written_as_nbformat_writes_it():
    nbformat = pytest.importorskip("nbformat")
    nb = strip_timing(executed_notebook("2001-01-01"))
    assert dumps(nb) == nbformat.writes(nbformat.from_dict(nb))


def test_a_file_that_is_not_a_notebook_is_one_clear_error(tmp_path, capsys):
    bad = tmp_path / "notes.ipynb"
    for text in ("not json", json.dumps([1, 2])):
        bad.write_text(text, encoding="utf-8")
        with pytest.raises(CpnasError, match="is not a notebook"):
            clean_file(bad)
        assert bad.read_text(encoding="utf-8") == text
    assert main([str(tmp_path / "missing.ipynb")]) == 2
    assert "cannot read the notebook" in capsys.readouterr().err
