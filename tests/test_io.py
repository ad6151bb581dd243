"""Atomic writes (DESIGN §5): a failed write never damages the previous file."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

import cpnas.io as cio
from cpnas.errors import CpnasError


def leftovers(directory: Path) -> list[str]:
    """Temporary files left next to the target (the writer names them '.<name>.*.tmp')."""
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture
def old_file(tmp_path) -> Path:
    path = tmp_path / "metrics.json"
    cio.write_json(path, {"version": "old"})
    return path


def test_write_and_read_json(tmp_path):
    path = cio.write_json(tmp_path / "a" / "b" / "x.json", {"t": (1, 2), "p": Path("/x"), "s": torch.tensor(3.5)})
    assert path == tmp_path / "a" / "b" / "x.json"
    assert cio.read_json(path) == {"t": [1, 2], "p": "/x", "s": 3.5}
    assert cio.write_text(tmp_path / "t.txt", "héllo\n").read_text(encoding="utf-8") == "héllo\n"
    assert leftovers(tmp_path) == []


def test_write_json_rejects_unknown_objects_before_touching_the_file(old_file):
    with pytest.raises(TypeError, match="cannot serialise object"):
        cio.write_json(old_file, {"bad": object()})
    assert cio.read_json(old_file) == {"version": "old"}


def test_failed_rename_keeps_the_old_file(old_file, monkeypatch):
    def replace(src, dst):
        raise OSError(errno.EIO, "simulated I/O error")

    monkeypatch.setattr(cio.os, "replace", replace)
    with pytest.raises(OSError, match="simulated I/O error"):
        cio.write_json(old_file, {"version": "new"})
    monkeypatch.undo()
    assert cio.read_json(old_file) == {"version": "old"}
    assert leftovers(old_file.parent) == []


def test_writer_failing_mid_way_keeps_the_old_file(old_file):
    def half_then_crash(fh):
        fh.write(b'{"version": "ne')
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed mid-write"):
        cio.write_with(old_file, half_then_crash)
    assert cio.read_json(old_file) == {"version": "old"}
    assert leftovers(old_file.parent) == []


def test_interrupt_during_write_keeps_the_old_file(old_file, monkeypatch):
    def fsync(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(cio.os, "fsync", fsync)
    with pytest.raises(KeyboardInterrupt):
        cio.write_text(old_file, "new")
    monkeypatch.undo()
    assert cio.read_json(old_file) == {"version": "old"}
    assert leftovers(old_file.parent) == []


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_disk_full_is_a_user_error_mentioning_resume(old_file, monkeypatch, code):
    def fsync(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(cio.os, "fsync", fsync)
    with pytest.raises(CpnasError, match="--resume") as info:
        cio.write_json(old_file, {"version": "new"})
    monkeypatch.undo()
    assert str(old_file) in str(info.value) and "intact" in str(info.value)
    assert cio.read_json(old_file) == {"version": "old"}
    assert leftovers(old_file.parent) == []


def test_read_json_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 1,,}')
    with pytest.raises(CpnasError, match=r"bad\.json: not valid JSON \(.* at line 1, column \d+\)"):
        cio.read_json(bad)
    with pytest.raises(CpnasError, match=r"nothere\.json: no such file"):
        cio.read_json(tmp_path / "nothere.json")
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00{")
    with pytest.raises(CpnasError, match=r"binary\.json: not a UTF-8 text file"):
        cio.read_json(binary)
    with pytest.raises(CpnasError, match="is a directory"):
        cio.read_json(tmp_path)  # a directory is not a JSON file


def test_checkpoint_round_trip_and_errors(tmp_path):
    state = {"epoch": 3, "weights": torch.arange(6.0).view(2, 3), "pools": {"normal": [["none"]]}}
    path = cio.save_checkpoint(tmp_path / "ckpt.pt", state)
    loaded = cio.load_checkpoint(path)
    assert loaded["epoch"] == 3 and loaded["pools"] == state["pools"]
    assert torch.equal(loaded["weights"], state["weights"])
    with pytest.raises(CpnasError, match="without --resume"):
        cio.load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "damaged.pt").write_bytes(path.read_bytes()[:50])
    with pytest.raises(CpnasError, match=r"damaged\.pt: checkpoint is unreadable"):
        cio.load_checkpoint(tmp_path / "damaged.pt")


def test_json_is_human_readable(tmp_path):
    path = cio.write_json(tmp_path / "x.json", {"b": 1, "a": [1, 2]})
    text = path.read_text()
    assert text.endswith("\n") and text.index('"b"') < text.index('"a"')  # indented, key order kept
    assert json.loads(text) == {"b": 1, "a": [1, 2]}


def test_atomic_write_respects_the_umask(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    path = cio.write_text(tmp_path / "shared.txt", "x")
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_fixed_pdf_date_keeps_the_length():
    from cpnas.paths import fixed_pdf_date

    raw = b"1 0 obj << /CreationDate (D:20261126032917Z) >> xref"
    fixed = fixed_pdf_date(raw)
    assert fixed == b"1 0 obj << /CreationDate (D:19700101000000Z) >> xref" and len(fixed) == len(raw)


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")
def test_graphviz_figures_are_byte_reproducible(tmp_path, monkeypatch):
    import time

    import graphviz

    from cpnas.paths import save_graph

    monkeypatch.setenv("CPNAS_HOME", str(tmp_path))
    g = graphviz.Digraph()
    g.edge("a", "b")
    first = [p.read_bytes() for p in save_graph(g, "g", "smoke")]
    time.sleep(1.1)  # the stamp has a one-second resolution
    assert [p.read_bytes() for p in save_graph(g, "g", "smoke")] == first


def test_matplotlib_figures_are_byte_reproducible(tmp_path, monkeypatch):
    """PNG and PDF carry no creation date or software stamp: saving the same figure later gives the same bytes."""
    import time

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cpnas.paths import save_figure

    monkeypatch.setenv("CPNAS_HOME", str(tmp_path))
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    first = [p.read_bytes() for p in save_figure(fig, "f", "smoke")]
    time.sleep(1.1)  # the PDF's date has a one-second resolution
    assert [p.read_bytes() for p in save_figure(fig, "f", "smoke")] == first
    plt.close(fig)


def test_orphaned_temps_of_a_killed_write_are_removed(tmp_path):
    from cpnas.io import remove_orphaned_temps

    (tmp_path / ".history.json.cpnas-partial-abc123.tmp").write_text("half")
    (tmp_path / "history.json").write_text("[]")
    removed = remove_orphaned_temps(tmp_path)
    assert [p.name for p in removed] == [".history.json.cpnas-partial-abc123.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.json"]


def test_orphan_cleanup_leaves_a_users_own_temp_files(tmp_path, monkeypatch):
    """Only the writer's own names are orphans: a user's '.notes.tmp' or an editor's swap file stays."""
    from cpnas.io import remove_orphaned_temps

    mine = [".notes.tmp", ".history.json.abc123.tmp", ".x.tmp"]
    for name in mine:
        (tmp_path / name).write_text("the user's")
    cio.write_json(tmp_path / "a.json", {})  # the writer's temp name carries its mark
    seen = []
    monkeypatch.setattr(cio.os, "replace", lambda a, b: seen.append(Path(a).name) or os.rename(a, b))
    cio.write_json(tmp_path / "b.json", {})
    assert seen and cio.TEMP_MARK in seen[0]
    assert remove_orphaned_temps(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == sorted(mine)


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
def test_an_unwritable_folder_is_one_clear_error(tmp_path, monkeypatch, code):
    def refuse(*a, **k):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(cio.tempfile, "mkstemp", refuse)
    with pytest.raises(CpnasError, match="cannot write .*(read-only|permission)"):
        cio.write_json(tmp_path / "run" / "x.json", {})


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_a_read_only_folder_is_one_clear_error(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(CpnasError, match="cannot write"):
            cio.write_json(folder / "x.json", {})
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize("obj", [torch.zeros(3), 7, [1, 2]])
def test_a_checkpoint_that_is_not_a_dict_is_one_clear_error(tmp_path, obj):
    path = tmp_path / "checkpoint.pt"
    torch.save(obj, path)
    with pytest.raises(CpnasError, match="not a cpnas checkpoint"):
        cio.load_checkpoint(path)


@pytest.mark.parametrize("content, message", [("[" * 100_000 + "]" * 100_000, "nested too deeply"),
                                              ('{"seed": ' + "9" * 5000 + "}", "not a usable JSON file")])
def test_pathological_json_is_one_line(tmp_path, content, message):
    from cpnas.io import read_json

    path = tmp_path / "g.json"
    path.write_text(content)
    with pytest.raises(CpnasError, match=message) as exc:
        read_json(path)
    assert "\n" not in str(exc.value)


def test_a_directory_is_reported_as_a_directory(tmp_path):
    from cpnas.io import read_json

    with pytest.raises(CpnasError, match="is a directory"):
        read_json(tmp_path)
