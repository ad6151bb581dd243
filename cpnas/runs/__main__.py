"""``python -m cpnas.runs``: the recorded cost of ``make reproduce``'s finished runs, or a comparison with a
re-run (:func:`cpnas.runs.cost.main`)."""

from cpnas.runs.cost import main

if __name__ == "__main__":
    raise SystemExit(main())
