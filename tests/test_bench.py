"""The benchmark runs and reports both ratios (no timing is asserted: speed lives in `make bench`)."""

from cpnas import bench


def test_bench_path_uses_every_op_but_none():
    path = bench.bench_path()
    assert "none" not in path.normal + path.reduce
    assert len(set(path.normal)) == 7


def test_bench_writes_both_ratios(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "_median_step", lambda *a, **k: 0.5)  # the structure, not the speed
    res = bench.run(tmp_path, scale="smoke", batch=2, images=8)
    assert res["throughput"]["binary_over_real_step_time"] == 1.0
    assert res["search"]["cpnas_over_pcdarts_total"] > 0
    md = (tmp_path / "bench.md").read_text()
    assert "1-bit / 32-bit step time" in md and "CP-NAS / PC-DARTS projected search time" in md
    assert (tmp_path / "bench.json").is_file()
