"""The networks and images a deploy measures: the 1-bit evaluation network (trained, rebuilt from its run
folder by :func:`cpnas.runs.network.trained_network`, or random with real-looking BN statistics), its
32-bit twin, and real test images of its dataset (:mod:`cpnas.deploy.measure`)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from cpnas.config import Config
from cpnas.errors import CpnasError
from cpnas.genotype import Genotype


CALIBRATION_IMAGES = 64
"""Images (and as many N(0,1) inputs) whose statistics become a random network's BN statistics. With 8 or 32
images, or images alone, some channels saw a single value: their variance is 0, their mean sits exactly on a
lattice point α·d, and BN maps that d to ±0 + rounding noise × 1/√eps — a tie the simulated net resolves by
its own float noise (observed: 1-bit DARTS_V2 at C = 12, and the cpu cell on N(0,1) inputs). A trained net's
dead channels are the same case: the one known way the packed and simulated nets can disagree."""


def calibrate_bn(model: nn.Module, images: torch.Tensor) -> nn.Module:
    """Give a randomly initialised network real-looking BN statistics: their averages over ``images``.

    Without it every BN of a fresh network holds mean 0 / variance 1 and the
    activations drift far from the range a trained network sees.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for chunk in images.split(32):
            model(chunk)
    return model.eval()


def trained_looking_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random BN affine terms (γ ~ U(0.5, 1.5), β ~ 0.3·N(0, 1)) in place of the init's γ = 1, β = 0.

    With β = 0 a channel that never changes (the ImageNet network's first factorized reduce reads the
    stem's output after the in-place ReLU of ``stem1``: all signs +1) outputs BN(μ) = 0 + rounding noise,
    a tie at every pixel; a trained β moves it off zero, as here.
    """
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            with torch.no_grad():
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(0.3 * torch.randn(m.bias.shape, generator=g))
    return model


def sample_images(n: int, *, dataset: str = "cifar10", image_size: int = 32, data_root: str | os.PathLike | None = None,
                  seed: int = 0) -> tuple[torch.Tensor, str]:
    """``n`` real test images of ``dataset`` (normalized as in training), or seeded synthetic ones if none is here.

    The images of :func:`labelled_images`; returns the images and a description saying which.
    """
    images, _, description = labelled_images(n, dataset=dataset, image_size=image_size, data_root=data_root, seed=seed)
    return images, description


def labelled_images(n: int, *, dataset: str = "cifar10", image_size: int = 32,
                    data_root: str | os.PathLike | None = None,
                    seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, str]:
    """``n`` real test images of ``dataset`` (normalized as in training) and their labels, or seeded synthetic ones.

    The first ``⌈n / 10⌉`` test images of every class in file-name order (:func:`cpnas.data.load_images`,
    which finds the dataset's folder and test split through its registry entry; the JPEG copy of CIFAR-10
    keeps no order across classes), ``n`` of them drawn with ``seed`` (all of them when ``n`` is a
    multiple of 10). Returns the images, the labels and a description saying which.
    """
    from cpnas import data

    try:
        test = data.load_images(dataset, "test", data_root, image_size=image_size, limit_per_class=-(-n // 10),
                                progress=False)
    except CpnasError:
        test = None
    if test is not None and len(test.images):
        g = torch.Generator().manual_seed(seed)
        pick = torch.randperm(len(test.images), generator=g)[:n]
        return (data.normalize(test.images[pick].contiguous()), test.labels[pick],
                f"{len(pick)} {dataset} test images, the first {-(-n // 10)} of each class ({test.description})")
    synth = data.synthetic_images(n, seed=seed, image_size=image_size, split="test")
    return data.normalize(synth.images), synth.labels, f"{n} synthetic images (no {dataset} folder here)"


def _read_image(path: Path, size: int) -> torch.Tensor:
    """One image file as a 3×size×size uint8 tensor (shorter side resized to ``size``, centre crop)."""
    from PIL import Image

    with Image.open(path) as im:
        rgb = im.convert("RGB")
    if rgb.size != (size, size):
        scale = size / min(rgb.size)
        rgb = rgb.resize((max(size, round(rgb.width * scale)), max(size, round(rgb.height * scale))))
        left, top = (rgb.width - size) // 2, (rgb.height - size) // 2
        rgb = rgb.crop((left, top, left + size, top + size))
    return torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8).view(size, size, 3).permute(2, 0, 1)


def build_pair(genotype: Genotype, cfg: Config, *, dataset: str = "cifar10", size: str = "small",
               checkpoint: str | os.PathLike | None = None, seed: int = 0) -> tuple[nn.Module, nn.Module, dict]:
    """The 1-bit evaluation network (trained from ``checkpoint`` or random) and its 32-bit twin, no aux tower.

    ``checkpoint`` is a ``cpnas train`` run folder (``checkpoint.pt`` with key
    ``model``, ``config.json``); its genotype, channels and cells are used, and
    ``genotype`` must match it. Returns ``(binary, real, info)``.
    """
    from cpnas.binary import BINARY, REAL
    from cpnas.data import get_dataset
    from cpnas.evaluation import train_config
    from cpnas.runs.files import CHECKPOINT, CONFIG
    from cpnas.runs.network import channels_of, read_run, trained_network

    tcfg = train_config(cfg, dataset)
    channels, layers, num_classes = channels_of(tcfg, size), tcfg.layers, 10
    source = (f"random weights (seed {seed}), random BN affine terms, BN statistics of {CALIBRATION_IMAGES} images and "
              f"{CALIBRATION_IMAGES} N(0,1) inputs")
    trained = None
    if checkpoint is not None:
        run = Path(checkpoint)
        if not (run / CHECKPOINT).is_file():
            raise CpnasError(f"{run}: no {CHECKPOINT} here; give a 'cpnas train' run folder (--out of cpnas train)")
        trained = read_run(run)
        if trained.precision != "binary":
            raise CpnasError(f"{run}: precision {trained.precision!r} has real activations somewhere; "
                             "the packed form needs a 'binary' run")
        if trained.genotype != genotype:
            raise CpnasError(f"{run} was trained on another genotype than the one given; pass the run's own "
                             f"genotype ({trained.key.get('genotype_path', 'see its ' + CONFIG)})")
        dataset = trained.dataset
        channels = channels_of(train_config(trained.config, dataset), trained.size)
        layers = train_config(trained.config, dataset).layers
        num_classes = trained.metrics.get("num_classes") or get_dataset(dataset).num_classes
        source = f"trained weights from {run}"
    spec = get_dataset(dataset)
    if checkpoint is None:
        num_classes = spec.num_classes or num_classes
    net_cls = spec.network_class()
    torch.manual_seed(seed)
    try:
        binary = (trained_network(trained, num_classes=num_classes) if trained is not None else
                  net_cls(genotype, C=channels, num_classes=num_classes, layers=layers, auxiliary=False, precision=BINARY))
        real = net_cls(genotype, C=channels, num_classes=num_classes, layers=layers, auxiliary=False, precision=REAL)
    except ValueError as exc:
        raise CpnasError(f"cannot build the {dataset} network with C={channels}, {layers} cells: {exc}") from None
    if trained is None:
        trained_looking_bn(binary, seed)
        trained_looking_bn(real, seed)
    binary.auxiliary = None
    info = {"dataset": dataset, "channels": channels, "layers": layers, "num_classes": num_classes,
            "image_size": tcfg.image_size, "weights": source}
    return binary.eval(), real.eval(), info
