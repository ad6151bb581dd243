"""Seeded, class-stratified index splits: the search split, data fractions, the validation split (§3.1).

Every split is a pure function of its sizes, fractions and seed (and the labels, when
stratified), identical on every platform, so a run and its resumption draw the same images.
"""

from __future__ import annotations

import hashlib

import torch

from cpnas.errors import CpnasError


def _mix_seed(*values: int) -> int:
    """A 63-bit seed from integers, identical on every platform and Python version."""
    data = b"".join(int(v).to_bytes(16, "little", signed=True) for v in values)
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") >> 1


def _random_order(n: int, seed: int, labels: torch.Tensor | None) -> torch.Tensor:
    """A seeded permutation of ``range(n)``; with ``labels``, every prefix is class-balanced.

    Stratification: the *r*-th of a class's ``n_c`` samples (in random order)
    gets the key ``(r + u) / n_c`` with ``u ~ U(0, 1)``; sorting by the key
    interleaves the classes so that any prefix holds each class in proportion
    to its size, within one sample.
    """
    g = torch.Generator().manual_seed(_mix_seed(seed, n))
    if labels is None:
        return torch.randperm(n, generator=g)
    labels = torch.as_tensor(labels)
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {tuple(labels.shape)}")
    perm = torch.randperm(n, generator=g)
    shuffled = labels[perm]
    # rank of each (shuffled) sample within its class: stable sort by label, then position in the run
    by_class = torch.sort(shuffled, stable=True).indices
    counts = torch.bincount(shuffled)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty(n, dtype=torch.int64)
    rank[by_class] = torch.arange(n) - starts[shuffled[by_class]]
    key = (rank.double() + torch.rand(n, generator=g, dtype=torch.float64)) / counts[shuffled].double()
    return perm[torch.argsort(key, stable=True)]


def _count(n: int, fraction: float, what: str) -> int:
    if not 0.0 < fraction <= 1.0:
        raise CpnasError(f"{what} must be in (0, 1], got {fraction!r}")
    k = round(fraction * n)
    if k < 1:
        raise CpnasError(f"{what} {fraction!r} of {n} samples selects no sample; use a fraction of "
                         f"at least {1 / n:.2g}")
    return k


def search_split(n_train: int, train_fraction: float, score_fraction: float, seed: int, *,
                 labels: torch.Tensor | None = None,
                 exclude: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Disjoint ``(idx_train, idx_score)`` subsets of the training set for the search (§3.1).

    The paper uses "50% of the training set … for architecture search" (the
    supernet weights) and "5% … for evaluation" (scoring the sampled paths,
    Alg. 1). Both are drawn from one seeded permutation, so they never overlap;
    with ``labels`` the permutation is class-stratified (helps the tiny score
    sets of reduced scales). ``exclude`` (the trainings' validation split,
    :func:`validation_indices`) is taken out of the permutation first, so no search
    ever trains or scores on a validation image. Returned indices are sorted.
    """
    n_fit = _count(n_train, train_fraction, "the search train fraction")
    n_score = _count(n_train, score_fraction, "the search score fraction")
    if n_fit + n_score > n_train:
        raise CpnasError(f"search fractions {train_fraction} (train) + {score_fraction} (score) exceed "
                         f"the training set of {n_train} samples; they must sum to at most 1")
    order = _random_order(n_train, seed, labels)
    if exclude is not None and len(exclude):
        order = order[~torch.isin(order, torch.as_tensor(exclude))]
        if n_fit + n_score > len(order):
            raise CpnasError(f"search fractions {train_fraction} (train) + {score_fraction} (score) exceed the "
                             f"{len(order)} training samples outside the validation split")
    return order[:n_fit].sort().values, order[n_fit:n_fit + n_score].sort().values


def validation_indices(n: int, val_fraction: float, *, labels: torch.Tensor | None = None) -> torch.Tensor | None:
    """Sorted indices of the trainings' validation split (:func:`train_val_split`), ``None`` when it is empty."""
    if val_fraction == 0:
        return None
    n_val = _count(n, val_fraction, "the validation fraction")
    return _random_order(n, 0, torch.as_tensor(labels) if labels is not None else None)[n - n_val:].sort().values


def train_val_split(n: int, train_fraction: float, val_fraction: float, seed: int, *,
                    labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Sorted ``(idx_train, idx_val)``: a validation split held out, then the training subset.

    The validation split (``val_fraction`` of ``n``, class-stratified) is the *last*
    ``val_fraction`` of the seed-0 order, so every run of a scale validates on the same
    images, and they are none of the seed-0 search's images (:func:`search_split` takes
    the *first* images of that order); the training subset (``train_fraction`` of
    ``n``) is then drawn from the rest with ``seed``.
    ``val_fraction == 0`` gives ``(fraction_indices(n, train_fraction, seed), None)``,
    the split of runs without validation.
    """
    if val_fraction == 0:
        return fraction_indices(n, train_fraction, seed, labels=labels), None
    n_val = _count(n, val_fraction, "the validation fraction")
    n_fit = _count(n, train_fraction, "the data fraction")
    if n_val + n_fit > n:
        raise CpnasError(f"train fraction {train_fraction} + validation fraction {val_fraction} exceed the "
                         f"training set of {n} samples; they must sum to at most 1")
    labels_t = torch.as_tensor(labels) if labels is not None else None
    idx_val = validation_indices(n, val_fraction, labels=labels_t)
    keep = torch.ones(n, dtype=torch.bool)
    keep[idx_val] = False
    rest = torch.nonzero(keep).flatten()
    order = _random_order(len(rest), seed, labels_t[rest] if labels_t is not None else None)
    return rest[order[:n_fit]].sort().values, idx_val.sort().values


def fraction_indices(n: int, fraction: float, seed: int, *,
                     labels: torch.Tensor | None = None) -> torch.Tensor:
    """Sorted indices of a seeded ``fraction`` of ``range(n)`` (size-reduced scales).

    With ``labels`` the draw is class-stratified, keeping the class balance.
    ``fraction == 1`` returns every index.
    """
    k = _count(n, fraction, "the data fraction")
    if k == n:
        return torch.arange(n)
    return _random_order(n, seed, labels)[:k].sort().values


def _first_per_class(labels: torch.Tensor, limit: int) -> torch.Tensor:
    keep = torch.zeros_like(labels, dtype=torch.bool)
    for c in labels.unique():
        keep[torch.nonzero(labels == c).flatten()[:limit]] = True
    return torch.nonzero(keep).flatten()
