"""The named scales and training recipes: overrides of :data:`cpnas.config.PAPER` by dotted key.

* ``paper`` — the settings of the paper (§3.1), for a GPU (no override);
* ``cpu``   — the default of every ``make`` target: as faithful as a 2-core CPU
  allows within about 90 minutes a notebook;
* ``smoke`` — seconds per notebook, for CI and nbval.

A preset overrides only size fields and the fields of its named recipe (:data:`RECIPES`);
``tests/test_config.py`` enforces the rule. :func:`cpnas.config.get_config` applies them.
"""

from __future__ import annotations

from typing import Any

_SMOKE = {
    # one batch per epoch: even a step of this tiny supernet is not free on a CPU
    "search.layers": 4, "search.init_channels": 4, "search.T": 1, "search.batch_size": 32,
    "search.train_fraction": 0.0006, "search.score_fraction": 0.0003,
    # five trainings of 03 in seconds: 100 training and 50 test images, C in the paper's ratio 56:72:112
    "cifar.layers": 5, "cifar.channels_small": 4, "cifar.channels_medium": 5, "cifar.channels_large": 8,
    "cifar.epochs": 1, "cifar.batch_size": 32, "cifar.train_fraction": 0.002, "cifar.test_fraction": 0.005,
    "imagenet.layers": 5, "imagenet.channels_small": 8, "imagenet.channels_medium": 8,
    "imagenet.channels_large": 8, "imagenet.epochs": 1, "imagenet.batch_size": 16,
    "imagenet.train_fraction": 0.01, "imagenet.test_fraction": 0.01, "imagenet.image_size": 64,
    "data.synthetic_train": 10000, "data.synthetic_test": 200,
}

RECIPES: dict[str, dict[str, Any]] = {
    # §3.1 as printed: SGD (momentum 0.9), lr 0.025, one weight decay for all, cosine per epoch, cutout.
    "paper": {},
    # BNN practice for the latent weights of 1-bit convs: Adam, no weight decay on them (Bi-Real Net,
    # Liu et al. 2018 §4; ReActNet, Liu et al. 2020 §4.1; Real-to-Binary, Martinez et al. 2020; larq's
    # optimization guide), cosine annealed per step. Chosen for the cpu scale by the recipe sweep
    # (cpnas.recipe; its validation top-1 of every variant is tables/recipe_sweep.md): the learning
    # rate with the best validation top-1, and the CP loss's kernel term off (weight 0), which lowered
    # it. With the paper's SGD a 1-bit conv's latent weights move a tiny fraction of their size per step
    # and a CPU budget flips almost no sign. No cutout: at a few epochs the nets underfit.
    # The search's lr (5e-3) and Imagenette's were not swept; Imagenette takes CIFAR's choice.
    "adam-bnn": {
        "search.optimizer": "adam", "search.lr": 5e-3, "search.weight_decay": 0.0,
        "search.binary_weight_decay": 0.0,
        "cifar.optimizer": "adam", "cifar.lr": 1e-2, "cifar.lr_schedule": "cosine_step",
        "cifar.weight_decay": 0.0, "cifar.binary_weight_decay": 0.0, "cifar.cutout": 0,
        "imagenet.optimizer": "adam", "imagenet.lr": 1e-2, "imagenet.lr_schedule": "cosine_step",
        "imagenet.weight_decay": 0.0, "imagenet.binary_weight_decay": 0.0,
        "loss.kernel_weight": 0.0,
    },
}
"""Named training recipes: overrides of recipe fields only (``recipe=True``; tested)."""

RECIPE_SOURCES: dict[str, str] = {
    "paper": "§3.1 as printed",
    "adam-bnn": "BNN practice for latent weights: Adam, no weight decay on them (Bi-Real Net, Liu et al. 2018 §4; "
                "ReActNet, Liu et al. 2020 §4.1; Real-to-Binary, Martinez et al. 2020), lr and kernel weight "
                "chosen by the cpu recipe sweep (tables/recipe_sweep.md)",
}
"""Where each named recipe comes from (printed by ``cpnas config`` beside the fields it sets)."""

_CPU = {
    # The cpnas search, sized for one thread within a notebook's budget: 35 epochs (T = 1) of
    # 1,000 training images at C = 8, Child and Parent each, every draw scored on 10,000 images
    # (20 % of CIFAR-10's training set, 4× the paper's 5 %) after re-estimating BN on 4 batches.
    # The score split's size sets the noise of z: at β_P = 2, z = 2A_P − A_C adds the binomial
    # noise of both accuracies while their correlated variation partly cancels; tools/snr_probe.py
    # measures the snr of round 0 at several score-split sizes (results/cpu/snr_probe/), and the
    # split is the size whose snr it found clearly above 1.
    "search.layers": 6, "search.init_channels": 8, "search.T": 1, "search.batch_size": 64,
    "search.train_fraction": 0.02, "search.score_fraction": 0.2,
    # A CIFAR training of the small size sized for one thread (make bench measures its img/s): 8 cells,
    # C = 12/16/24 (the paper's 56:72:112 ratio, rounded to even widths), 3 epochs of 20,000
    # images at batch 32 (1,875 steps), validated on 2,000 held-out training images and tested
    # on all 10,000 test images (±0.5 points binomial SE at 50 %).
    "cifar.layers": 8, "cifar.channels_small": 12, "cifar.channels_medium": 16, "cifar.channels_large": 24,
    "cifar.epochs": 3, "cifar.batch_size": 32, "cifar.train_fraction": 0.4, "cifar.test_fraction": 1.0,
    "cifar.val_fraction": 0.04, "cifar.eval_every": 3,
    # 04's two Imagenette trainings within a notebook's budget: 10 cells, C = 16, 112×112 inputs
    # (14×14 after the stem), 6 epochs of the 4,000 training images.
    "imagenet.layers": 10, "imagenet.channels_small": 16, "imagenet.channels_medium": 16,
    "imagenet.channels_large": 16, "imagenet.epochs": 6, "imagenet.batch_size": 32,
    "imagenet.train_fraction": 1.0, "imagenet.test_fraction": 1.0, "imagenet.image_size": 112,
    "imagenet.eval_every": 3,
    **RECIPES["adam-bnn"],
}
_SMOKE.update(RECIPES["adam-bnn"])  # the cpu recipe's code path, at smoke sizes

PRESET_OVERRIDES: dict[str, dict[str, Any]] = {"paper": {}, "cpu": _CPU, "smoke": _SMOKE}
PRESET_RECIPES: dict[str, str] = {"paper": "paper", "cpu": "adam-bnn", "smoke": "adam-bnn"}
SCALES: tuple[str, ...] = tuple(PRESET_OVERRIDES)
DEFAULT_SCALE = "cpu"
