"""Typed, frozen configuration: every hyperparameter once, with its source.

Three named scales (DESIGN §3), ``paper``, ``cpu`` and ``smoke``, are overrides of
:data:`PAPER` (:mod:`cpnas.presets`). Presets differ from ``paper`` **only in size fields** (cells, channels, epochs,
data fractions, T, batch size, image counts), marked ``size=True`` in the field
metadata, **and in the fields of a named training recipe** (``recipe=True``:
optimizer, learning rate, weight decay per parameter group, schedule, the CP
loss's kernel weight): the ``cpu`` preset trains its 1-bit networks with the
``adam-bnn`` recipe of the BNN literature (:data:`cpnas.presets.RECIPES`), because the paper's
SGD recipe leaves 1-bit nets at chance within a CPU budget.
``tests/test_config.py`` enforces the rule; ``paper`` keeps the paper's recipe.
Fields with ``choices`` metadata refuse any other value when the config is built. Each field's ``source`` metadata
says where the paper's value comes from; values the paper does not state are
taken from the work it follows (DARTS, PC-DARTS) and say so.

Override any field with a dotted key: ``get_config("cpu", {"search.T": 2})``.
Unknown scales and keys fail loudly with the list of valid ones.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from cpnas.errors import CpnasError
from cpnas.presets import DEFAULT_SCALE, PRESET_OVERRIDES, SCALES


def _f(default: Any, source: str, *, size: bool = False, recipe: bool = False,
       choices: tuple[Any, ...] | None = None, ge: float | None = None, gt: float | None = None,
       le: float | None = None, lt: float | None = None) -> Any:
    """A dataclass field carrying its provenance (``source``), whether it is a size or a
    recipe field, (``choices``) the only values it accepts, and the bounds of its range
    (``ge``/``gt``/``le``/``lt``; for a tuple, of each element)."""
    if isinstance(default, (dict, list)):
        raise TypeError("use tuples for frozen configs")
    if choices is not None and default not in choices:
        raise ValueError(f"default {default!r} is not one of {choices}")
    bounds = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if v is not None}
    if _range_error(default, bounds):
        raise ValueError(f"default {default!r} is out of range {bounds}")
    return field(default=default, metadata={"source": source, "size": size, "recipe": recipe,
                                            "choices": choices, "bounds": bounds})


_BOUND_TEXT = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}


def _range_error(value: Any, bounds: Mapping[str, float]) -> str | None:
    """The violated bound of ``value`` (each element of a tuple), as text, or ``None``."""
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        for kind, bound in bounds.items():
            ok = {"ge": v >= bound, "gt": v > bound, "le": v <= bound, "lt": v < bound}[kind]
            if not ok:
                return " and ".join(f"{_BOUND_TEXT[k]} {b:g}" if isinstance(b, float) else f"{_BOUND_TEXT[k]} {b}"
                                    for k, b in bounds.items())
    return None


@dataclass(frozen=True)
class SearchConfig:
    """Architecture search (§3.1 "In the search process…", Alg. 1)."""

    layers: int = _f(6, "§3.1: 'a total of 6 cells'", size=True, ge=1)
    init_channels: int = _f(16, "§3.1: 'initial 16 channels'", size=True, ge=1)
    nodes: int = _f(4, "§3.1: 'M = 4 intermediate nodes' (the genotype format has nodes 2-5: no other M)",
                    choices=(4,))
    reduction_layers: tuple[int, ...] = _f(
        (1, 3), "§3.1: reduction cells 'in the second and the fourth layers' (⚑ 0-based 1 and 3)", ge=0)
    T: int = _f(3, "§3.1: 'We set T = 3'", size=True, ge=1)
    beta_p: float = _f(2.0, "§3.1: 'β_P is set as 2' (CIFAR-10); 0.33 on ImageNet", ge=0)
    batch_size: int = _f(512, "§3.1: 'the batch size is set to 512'", size=True, ge=1)
    optimizer: str = _f("sgd", "§3.1: SGD with momentum", recipe=True, choices=("sgd", "adam"))
    lr: float = _f(0.025, "§3.1: 'initial learning rate of 0.025'", recipe=True, gt=0)
    lr_min: float = _f(0.0, "§3.1: 'annealed down to zero following a cosine schedule'", ge=0)
    momentum: float = _f(0.9, "§3.1: 'a momentum of 0.9' (SGD only)", ge=0, lt=1)
    weight_decay: float = _f(5e-4, "§3.1: 'a weight decay of 5×10⁻⁴' (real-valued parameters)", recipe=True, ge=0)
    binary_weight_decay: float = _f(5e-4, "§3.1: one weight decay for every parameter, the latent weights of "
                                          "the 1-bit convs included", recipe=True, ge=0)
    grad_clip: float = _f(5.0, "not stated for the search; DARTS' value", gt=0)
    train_fraction: float = _f(0.5, "§3.1: '50% of the training set … for architecture search'", size=True, gt=0, le=1)
    score_fraction: float = _f(0.05, "§3.1: '5% of the training set for evaluation'", size=True, gt=0, le=1)
    calibration_batches: int = _f(4, "⚑ not stated; before a sampled path is scored, its BN statistics are "
                                     "re-estimated on this many search-train batches and the score runs in "
                                     "eval mode (SPOS, Guo et al. 2020 §3.3), so a score does not depend on "
                                     "how the score split is batched", size=True, ge=0)
    final_cell: str = _f("top2", "⚑ 'top2' (DARTS: each node keeps its 2 best non-none edges, ranked by the "
                                 "mean z̄ of the op left on them) or 'keep_all' (each edge keeps its last op); "
                                 "cpnas.efficiency.final_cell_readings compares the parameter counts of both "
                                 "with Table 1's",
                         choices=("keep_all", "top2"))
    indicator: str = _f("printed", "⚑ Eq. 1 as printed, z = A_C + β_P(A_P − A_C) ('printed'), or the reading "
                                   "of its 'performance loss' wording, z = A_C − β_P(A_P − A_C) ('gap_penalty')",
                        choices=("printed", "gap_penalty"))
    parent_relu: bool = _f(True, "⚑ §2.2 removes ReLU 'to avoid the vanishing of the negative in the 1-bit "
                                 "convolution', a reason that holds for the 1-bit Child only; the 32-bit "
                                 "Parent keeps DARTS' ReLU before each conv block (false: no ReLU, which makes "
                                 "the Parent linear away from max-pooling)")


@dataclass(frozen=True)
class TrainConfig:
    """Training a found architecture (§3.1 "After search…"); CIFAR and ImageNet presets."""

    layers: int = _f(10, "§3.1: '10 cells (8 normal cells and 2 reduction cells)'", size=True, ge=1)
    channels_small: int = _f(56, "§3.1: 'initial number of channels … 56, 72, 112'", size=True, ge=1)
    channels_medium: int = _f(72, "§3.1", size=True, ge=1)
    channels_large: int = _f(112, "§3.1", size=True, ge=1)
    epochs: int = _f(600, "§3.1: 'trained on CIFAR-10 for 600 epochs'", size=True, ge=1)
    batch_size: int = _f(96, "§3.1: 'a batch size of 96'", size=True, ge=1)
    optimizer: str = _f("sgd", "§3.1: SGD with momentum", recipe=True, choices=("sgd", "adam"))
    lr: float = _f(0.025, "§3.1: 'initial learning rate of 0.025'", recipe=True, gt=0)
    lr_min: float = _f(0.0, "§3.1: 'annealed down to zero … cosine'", ge=0)
    lr_schedule: str = _f("cosine_epoch", "§3.1 cosine, set once per epoch as DARTS' train.py ('cosine_step': "
                                          "set before every step)", recipe=True,
                          choices=("cosine_epoch", "cosine_step"))
    momentum: float = _f(0.9, "§3.1 (SGD only)", ge=0, lt=1)
    weight_decay: float = _f(3e-4, "§3.1: 'a weight decay of 3×10⁻⁴' (real-valued parameters)", recipe=True, ge=0)
    binary_weight_decay: float = _f(3e-4, "§3.1: one weight decay for every parameter, the latent weights of "
                                          "the 1-bit convs included", recipe=True, ge=0)
    grad_clip: float = _f(5.0, "§3.1: 'a gradient clipping at 5'", gt=0)
    cutout: int = _f(16, "§3.1 cutout (DeVries & Taylor); length 16 as in DARTS", recipe=True, ge=0)
    auxiliary_weight: float = _f(0.4, "auxiliary tower (§3.1 ImageNet, DARTS CIFAR); weight 0.4 as in DARTS", ge=0)
    drop_path: float = _f(0.0, "not stated in the paper; DARTS uses 0.2, we keep 0 (no mention)", ge=0, lt=1)
    label_smoothing: float = _f(0.0, "§3.1: label smoothing for ImageNet only", ge=0, lt=1)
    train_fraction: float = _f(1.0, "§3.1: the full training set", size=True, gt=0, le=1)
    test_fraction: float = _f(1.0, "§3.1: the full test set", size=True, gt=0, le=1)
    val_fraction: float = _f(0.0, "a validation split held out of the training set before the training "
                                  "subset is drawn (0 = none, as §3.1); the recipe sweep selects on it",
                             size=True, ge=0, lt=1)
    image_size: int = _f(32, "CIFAR-10 images are 32×32", size=True, ge=1)
    eval_every: int = _f(1, "test accuracy after every epoch, as DARTS' train.py; the last epoch is always "
                            "measured (a cost knob only)", size=True, ge=1)


@dataclass(frozen=True)
class ImageNetTrainConfig(TrainConfig):
    """Training on ImageNet (§3.1 "When stacking the cells to evaluate on ImageNet…")."""

    layers: int = _f(10, "§3.1: '10 cells (8 normal cells and 2 reduction cells)'", size=True, ge=1)
    channels_small: int = _f(102, "§3.1: 'the initial channel number being 102'", size=True, ge=1)
    channels_medium: int = _f(102, "§3.1: one ImageNet size only", size=True, ge=1)
    channels_large: int = _f(102, "§3.1: one ImageNet size only", size=True, ge=1)
    epochs: int = _f(250, "§3.1: 'trained from scratch for 250 epochs'", size=True, ge=1)
    batch_size: int = _f(256, "§3.1: 'a batch size of 256'", size=True, ge=1)
    lr: float = _f(0.05, "§3.1: 'initial learning rate of 0.05'", recipe=True, gt=0)
    weight_decay: float = _f(3e-5, "§3.1: 'a weight decay of 3×10⁻⁵'", recipe=True, ge=0)
    binary_weight_decay: float = _f(3e-5, "§3.1: one weight decay for every parameter", recipe=True, ge=0)
    cutout: int = _f(0, "§3.1: no cutout mentioned for ImageNet", recipe=True, ge=0)
    label_smoothing: float = _f(0.1, "§3.1: 'label smoothing'; 0.1 as in DARTS", ge=0, lt=1)
    image_size: int = _f(224, "§3.1: '224 × 224' input", size=True, ge=1)


@dataclass(frozen=True)
class LossConfig:
    """The kernel-level CP loss, Eq. 3-4 (§2.4)."""

    kernel_weight: float = _f(1.0, "Eq. 3: the kernel term has unit weight", recipe=True, ge=0)
    center_lambda: float = _f(1e-5, "Eq. 3: λ; not stated in the paper (⚑). ‖f − f̄‖² sums over the whole "
                                    "last feature map (thousands of values), so λ is small enough to keep the term "
                                    "below the CE at initialisation; a much larger λ collapses the feature map",
                              ge=0)
    kernel_source: str = _f("child", "⚑ whose filters are H: 'child' (latent weights) or 'parent'",
                            choices=("child", "parent"))
    center_momentum: float = _f(0.9, "running class means of the center term (our choice)", ge=0, le=1)


@dataclass(frozen=True)
class DataConfig:
    """Data handling shared by every stage."""

    num_workers: int = _f(0, "decoded tensors are cached in memory; no worker processes needed", ge=0)
    synthetic_train: int = _f(2048, "size of the synthetic dataset (tests only)", size=True, ge=1)
    synthetic_test: int = _f(512, "size of the synthetic test set (tests only)", size=True, ge=1)


@dataclass(frozen=True)
class Config:
    """Everything a run needs. ``scale`` names the preset it came from."""

    scale: str = "paper"
    search: SearchConfig = SearchConfig()
    cifar: TrainConfig = TrainConfig()
    imagenet: ImageNetTrainConfig = ImageNetTrainConfig()
    imagenet_search_lr: float = _f(0.05, "§3.1: ImageNet search 'initial learning rate is set to 0.05'", gt=0)
    imagenet_beta_p: float = _f(0.33, "§3.1: ImageNet search 'β_P is set to 0.33'", ge=0)
    loss: LossConfig = LossConfig()
    data: DataConfig = DataConfig()
    seed: int = _f(0, "our default seed", ge=0, lt=2**63)
    search_dataset: str = field(default="", metadata={
        "source": "the dataset whose search settings (§3.1) are applied (get_config's dataset; "
                  "cpnas search --dataset); empty: none", "resolved": True})
    strategy_overrides: tuple[tuple[str, Any], ...] = field(default=(), metadata={
        "source": "values set for keys of strategies' own sections (:func:`register_section`), in the order "
                  "set; read them through :meth:`section`", "resolved": True, "internal": True})

    def section(self, settings: type) -> Any:
        """The resolved values of a strategy's own section ``settings`` (a class given to
        :func:`register_section`): its defaults, then its preset for this scale, then the values set."""
        sec = _section_of(settings)
        values = dict(sec.presets.get(self.scale, {}))
        values.update({key.split(".", 1)[1]: v for key, v in self.strategy_overrides if key in sec.keys})
        return settings(**values)

    def to_dict(self) -> dict:
        """Every value, each registered strategy section's inside the section it extends (``search``)."""
        out = dataclasses.asdict(self)
        del out["strategy_overrides"]
        for sec in sections().values():
            out[sec.under].update(dataclasses.asdict(self.section(sec.settings)))
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


PAPER = Config()


@dataclass(frozen=True)
class StrategySection:
    """A strategy's own configuration section (see :func:`register_section`)."""

    settings: type
    strategy: str
    under: str
    presets: Mapping[str, Mapping[str, Any]]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(f"{self.under}.{f.name}" for f in fields(self.settings))


_SECTIONS: dict[str, StrategySection] = {}
_SECTION_LOADERS: list[Any] = []


def register_section(settings: type, *, strategy: str, under: str = "search",
                     presets: Mapping[str, Mapping[str, Any]] | None = None) -> type:
    """Make the frozen dataclass ``settings`` (fields made with :func:`_f`) strategy ``strategy``'s section.

    Its fields are keys of section ``under`` (``search.<field>``: ``--set``, the config files of
    runs and ``cpnas config`` show them there); ``presets[scale]`` overrides its defaults at a
    scale (size fields only, as the scales' own presets). A strategy reads it with
    ``cfg.section(settings)``; ``settings.check(self)``, when defined, checks across its fields.
    """
    if not dataclasses.is_dataclass(settings):
        raise TypeError(f"{settings.__name__} is not a dataclass")
    taken = {f.name for f in fields(_get_dotted(PAPER, under))}
    for sec in _SECTIONS.values():
        if sec.settings is not settings and sec.under == under:
            taken |= {f.name for f in fields(sec.settings)}
    clash = sorted(taken & {f.name for f in fields(settings)})
    if clash:
        raise ValueError(f"section {settings.__name__} of {strategy} repeats keys of {under}: {clash}")
    for scale, values in (presets or {}).items():
        settings(**values)  # a preset names fields of the section
    _SECTIONS[settings.__qualname__ + "@" + settings.__module__] = StrategySection(
        settings, strategy, under, {k: dict(v) for k, v in (presets or {}).items()})
    return settings


def unregister_section(settings: type) -> None:
    """Remove a section :func:`register_section` added (a test's own strategy)."""
    _SECTIONS.pop(settings.__qualname__ + "@" + settings.__module__, None)


def add_section_loader(loader: Any) -> None:
    """``loader()`` imports the modules whose sections must be known before a config is read
    (the package :mod:`cpnas` adds the import of the built-in strategies)."""
    if loader not in _SECTION_LOADERS:
        _SECTION_LOADERS.append(loader)


def sections() -> dict[str, StrategySection]:
    """Every registered strategy section (the built-in strategies' loaded first)."""
    for loader in _SECTION_LOADERS:
        loader()
    return _SECTIONS


def _section_of(settings: type) -> StrategySection:
    for sec in sections().values():
        if sec.settings is settings:
            return sec
    raise CpnasError(f"{settings.__name__} is not a registered configuration section")


def _set_section_key(cfg: "Config", key: str, value: Any) -> "Config":
    """``cfg`` with strategy-section key ``key`` set (checked against its field as any other key)."""
    sec = next(sec for sec in sections().values() if key in sec.keys)
    checked = getattr(_replace_dotted(cfg.section(sec.settings), key.split(".", 1)[1], value, key),
                      key.split(".", 1)[1])
    kept = tuple((k, v) for k, v in cfg.strategy_overrides if k != key)
    return dataclasses.replace(cfg, strategy_overrides=kept + ((key, checked),))


def _replace_dotted(cfg: Any, key: str, value: Any, full_key: str) -> Any:
    head, _, rest = key.partition(".")
    names = {f.name: f for f in fields(cfg)}
    if head not in names:
        raise CpnasError(f"unknown config key {full_key!r}; valid keys at this level: {', '.join(sorted(names))}")
    current = getattr(cfg, head)
    if rest:
        if not dataclasses.is_dataclass(current):
            raise CpnasError(f"unknown config key {full_key!r}: {head!r} has no sub-keys")
        return dataclasses.replace(cfg, **{head: _replace_dotted(current, rest, value, full_key)})
    if names[head].metadata.get("resolved"):
        raise CpnasError(f"config key {full_key!r} is set by the resolution itself (--dataset), not by --set")
    if dataclasses.is_dataclass(current):
        raise CpnasError(f"config key {full_key!r} is a section; set one of its fields, e.g. {full_key}.{fields(current)[0].name}")
    value = _coerce(current, value, full_key)
    choices = names[head].metadata.get("choices")
    if choices is not None and value not in choices:
        raise CpnasError(f"config key {full_key!r} must be one of {', '.join(map(str, choices))}; got {value!r}")
    bad = _range_error(value, names[head].metadata.get("bounds") or {})
    if bad:
        raise CpnasError(f"config key {full_key!r} must be {bad}; got {value!r}")
    return dataclasses.replace(cfg, **{head: value})


def _coerce(current: Any, value: Any, key: str) -> Any:
    """Convert an override to the type of the field it replaces (CLI values arrive as strings)."""
    kind = type(current)
    try:
        if isinstance(value, str) and kind is not str:
            if kind is bool:
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(value)
                return value.lower() in ("true", "1")
            if kind is tuple:
                return tuple(int(v) for v in value.strip("()[] ").split(",") if v.strip())
            value = kind(value)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if kind is tuple and isinstance(value, (list, tuple)):
            return tuple(int(v) for v in value)
    except ValueError:
        raise CpnasError(f"config key {key!r} expects a {kind.__name__}, got {value!r}") from None
    if isinstance(value, bool) and kind is not bool:
        raise CpnasError(f"config key {key!r} expects a {kind.__name__}, got {value!r}")
    if not isinstance(value, kind):
        raise CpnasError(f"config key {key!r} expects a {kind.__name__}, got {value!r}")
    if kind is float and not math.isfinite(value):
        raise CpnasError(f"config key {key!r} must be finite, got {value!r}")
    return value


def apply_overrides(cfg: Config, overrides: Mapping[str, Any] | None) -> Config:
    """Return ``cfg`` with dotted-key ``overrides`` applied; unknown keys raise CpnasError."""
    section_keys = {k for sec in sections().values() for k in sec.keys}
    for key, value in (overrides or {}).items():
        cfg = _set_section_key(cfg, key, value) if key in section_keys else _replace_dotted(cfg, key, value, key)
    return cfg


def get_config(scale: str = DEFAULT_SCALE, overrides: Mapping[str, Any] | None = None) -> Config:
    """The preset ``scale`` (``paper``, ``cpu`` or ``smoke``) with optional dotted overrides.

    A search on another dataset resolves its search fields through
    :func:`cpnas.data.registry.config_for` (the preset, the dataset's §3.1 search
    settings, then the user's overrides, last).
    """
    if scale not in PRESET_OVERRIDES:
        raise CpnasError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    cfg = apply_overrides(dataclasses.replace(PAPER, scale=scale), PRESET_OVERRIDES[scale])
    return check_consistency(apply_overrides(cfg, overrides))


def _get_dotted(cfg: Any, key: str) -> Any:
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def check_consistency(cfg: Config) -> Config:
    """Checks across fields (each field's own range is checked when it is set); returns ``cfg``."""
    s = cfg.search
    bad = [r for r in s.reduction_layers if not 0 <= r < s.layers]
    if bad:
        raise CpnasError(f"search.reduction_layers {list(s.reduction_layers)} must name cells 0…{s.layers - 1} "
                         f"of the {s.layers}-cell search network (search.layers); {bad} are outside it")
    if len(set(s.reduction_layers)) != len(s.reduction_layers):
        raise CpnasError(f"search.reduction_layers {list(s.reduction_layers)} repeats a cell")
    for sec in sections().values():
        values = cfg.section(sec.settings)
        if hasattr(values, "check"):
            values.check()
    return cfg


def parse_override(text: str) -> tuple[str, str]:
    """Parse a CLI ``--set key=value`` pair."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise CpnasError(f"--set expects key=value (e.g. search.T=2), got {text!r}")
    return key.strip(), value.strip()


def iter_fields(cfg: Any, prefix: str = ""):
    """Yield ``(dotted_key, value, metadata)`` for every leaf field of a config.

    A strategy's own section follows the section it extends; its fields' metadata name the
    strategy (``"strategy"``).
    """
    for f in fields(cfg):
        if f.metadata.get("internal"):
            continue
        value = getattr(cfg, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            yield from iter_fields(value, key + ".")
            if isinstance(cfg, Config):
                for sec in sections().values():
                    if sec.under == key:
                        for k, v, meta in iter_fields(cfg.section(sec.settings), key + "."):
                            yield k, v, {**meta, "strategy": sec.strategy}
        else:
            yield key, value, f.metadata
