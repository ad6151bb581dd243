"""Every module of the package stays small enough to read in one sitting."""

from pathlib import Path

MAX_LINES = 450
PACKAGE = Path(__file__).resolve().parents[1] / "cpnas"


def line_counts(root: Path) -> dict[str, int]:
    """Lines of every Python module under ``root``, by path relative to it."""
    return {str(p.relative_to(root)): len(p.read_text(encoding="utf-8").splitlines())
            for p in sorted(root.rglob("*.py"))}


def test_line_counts_sees_every_module(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.py").write_text("x = 1\n" * 3)
    (tmp_path / "sub" / "b.py").write_text("y = 2\n" * (MAX_LINES + 1))
    assert line_counts(tmp_path) == {"a.py": 3, "sub/b.py": MAX_LINES + 1}


def test_no_module_over_the_limit():
    counts = line_counts(PACKAGE)
    assert "bench.py" in counts and "data/sources.py" in counts
    over = {path: n for path, n in counts.items() if n > MAX_LINES}
    assert not over, f"modules over {MAX_LINES} lines (split each along a natural seam): {over}"
