"""Exactness, latency and file size of the packed network against the simulated one.

* :func:`exactness` — the packed logits against the simulated 1-bit network's on the
  same inputs: the integers of every XNOR 1×1 conv must be equal and the logits
  within :data:`LOGIT_TOLERANCE`.
* :func:`network_latency` — ms per forward of the 32-bit net, the simulated 1-bit
  net and the packed net, at each batch and thread count, interleaved so that the
  load of other processes hits all three alike.
* :func:`kernel_1x1` — the packed 1×1 kernel alone (sign packing + XNOR-popcount +
  folded affine) against PyTorch's 32-bit 1×1 conv of the same shape.
* :func:`file_size` — the packed model file against Table 3's memory accounting.
* :func:`deploy_report` — all of it for one genotype (``cpnas deploy``, ``make bench``,
  notebook 06).

Timings are medians of repeated calls after a warm-up, on whatever else the
machine runs: every report records the load average next to them.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

from cpnas.binary import BinaryConv2d
from cpnas.config import Config
from cpnas.errors import CpnasError
from cpnas.genotype import Genotype

log = logging.getLogger(__name__)

LOGIT_TOLERANCE = 1e-5
"""Issue 15: packed and simulated logits agree 'within 1e-5' (absolute), the integers inside exactly."""
KERNEL_CHANNELS = (64, 128, 256, 512)
"""Issue 15: the 1×1 kernel is measured at C = 64, 128, 256 and 512."""
KERNEL_PIXELS = 32
"""Spatial size of the 1×1 kernel benchmark: a 32×32 map, one image (a CIFAR cell's resolution)."""
CALIBRATION_IMAGES = 64
"""Images (and as many N(0,1) inputs) whose statistics become a random network's BN statistics. With 8 or 32
images, or images alone, some channels saw a single value: their variance is 0, their mean sits exactly on a
lattice point α·d, and BN maps that d to ±0 + rounding noise × 1/√eps — a tie the simulated net resolves by
its own float noise (observed: 1-bit DARTS_V2 at C = 12, and the cpu cell on N(0,1) inputs). A trained net's
dead channels are the same case: the one known way the packed and simulated nets can disagree."""
PAPER_SPEEDUP = 50.24
"""Table 3: the paper's FLOPs-based speedup of the small CP-NAS network over WRN-22."""


@contextmanager
def threads(n: int) -> Iterator[None]:
    """Run with ``n`` intra-op threads, restoring the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


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

    Returns the images and a description saying which.
    """
    from cpnas import data as D

    try:
        root = D.resolve_root(dataset, data_root)
    except CpnasError:
        root = None
    test = next((root / name for name in ("test", "val") if (root / name).is_dir()), None) if root else None
    if test is not None:
        per_class = -(-n // 10)
        files = [f for d in sorted(p for p in test.iterdir() if p.is_dir())
                 for f in sorted(d.iterdir())[:per_class]]
        g = torch.Generator().manual_seed(seed)
        pick = [files[i] for i in torch.randperm(len(files), generator=g)[:n].tolist()]
        if pick:
            images = torch.stack([_read_image(p, image_size) for p in pick])
            return D.normalize(images), f"{len(pick)} {dataset} test images from {test}"
    synth = D.synthetic_images(n, seed=seed, image_size=image_size, split="test")
    return D.normalize(synth.images), f"{n} synthetic images (no {dataset} folder here)"


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


def exactness(model: nn.Module, packed: nn.Module, inputs: torch.Tensor) -> dict[str, Any]:
    """Packed vs simulated on ``inputs``: equal XNOR integers and logits within :data:`LOGIT_TOLERANCE`.

    The packed network runs twice: op by op, recording the integers, and as it runs
    (each cell one extension call, :mod:`cpnas.deploy.cellplan`), whose logits must be
    bit-identical to the op-by-op ones (``cells_planned_equal_op_by_op``).
    The simulated network runs with its binary depthwise convs exact
    (:func:`~cpnas.deploy.packed.exact_depthwise`: sign(0) = +1 at exact ties, as the
    packed int8 kernel). ``float_ties`` compares with the simulated network as it is,
    whose float32 depthwise sums resolve some of those ties by their rounding residual:
    the logits' difference, whether the classes agree, and how many ties there were and
    how many the float sums turned negative.
    """
    from cpnas.deploy.packed import exact_depthwise, simulate, simulated_integers

    ties: dict[str, int] = {}
    with exact_depthwise(model, ties):
        as_is = simulate(model, inputs)
    with exact_depthwise(model), simulated_integers(model) as sim_ints:
        sim = simulate(model, inputs)
    with packed.trace_integers() as packed_ints:
        op_by_op = packed(inputs)
    out = packed(inputs)  # each cell as one extension call where it has a plan
    pairs = list(zip(sim_ints, packed_ints))
    differing = sum(int((a != b).sum()) for a, b in pairs if a.shape == b.shape)
    integers_equal = len(sim_ints) == len(packed_ints) and all(a.shape == b.shape for a, b in pairs) and differing == 0
    max_abs = float((sim - out).abs().max())
    return {"exact": bool(integers_equal and max_abs <= LOGIT_TOLERANCE and torch.equal(out, op_by_op)),
            "max_abs_diff": max_abs,
            "integers_equal": bool(integers_equal), "integer_tensors": len(sim_ints),
            "integers_compared": int(sum(a.numel() for a in sim_ints)), "integers_differing": differing,
            "argmax_equal": bool(torch.equal(sim.argmax(1), out.argmax(1))),
            "cells_planned_equal_op_by_op": bool(torch.equal(out, op_by_op)),
            "max_abs_logit": float(sim.abs().max()), "tolerance": LOGIT_TOLERANCE,
            "float_ties": {"max_abs_diff": float((as_is - out).abs().max()),
                           "argmax_equal": bool(torch.equal(as_is.argmax(1), out.argmax(1))),
                           "depthwise_ties": ties.get("ties", 0),
                           "depthwise_ties_negative": ties.get("ties_negative", 0)}}


def median_ms(fn: Callable[[], Any], reps: int = 5, warmup: int = 1) -> float:
    """Median wall-clock of ``fn()`` in ms over ``reps`` calls after ``warmup`` calls (:func:`cpnas.timing.median_time`)."""
    from cpnas.timing import median_time

    return 1e3 * median_time(fn, reps=reps, warmup=warmup)


def network_latency(nets: dict[str, Callable[[torch.Tensor], Any]], image_shape: Sequence[int], *,
                    batches: Sequence[int] = (1, 64), thread_counts: Sequence[int] = (1, 2),
                    reps: int = 5, reps_large: int = 2) -> dict[str, dict[str, dict[str, float]]]:
    """``{f"batch{b}": {f"threads{t}": {name: ms per forward}}}``; nets interleaved rep by rep.

    ``reps_large`` repetitions at batches above 8 (seconds each at the paper's size).
    """
    out: dict[str, dict[str, dict[str, float]]] = {}
    g = torch.Generator().manual_seed(0)
    for b in batches:
        x = torch.randn((b, *image_shape), generator=g).contiguous(memory_format=torch.channels_last)
        n = reps if b <= 8 else reps_large
        for t in thread_counts:
            with threads(t), torch.no_grad():
                for fn in nets.values():
                    fn(x)  # warm-up (and first-use dispatch timing)
                samples: dict[str, list[float]] = {name: [] for name in nets}
                for _ in range(n):
                    for name, fn in nets.items():
                        samples[name].append(median_ms(lambda: fn(x), reps=1, warmup=0))
            out.setdefault(f"batch{b}", {})[f"threads{t}"] = {k: statistics.median(v) for k, v in samples.items()}
    return out


def kernel_1x1(channels: Sequence[int] = KERNEL_CHANNELS, *, size: int = KERNEL_PIXELS, batch: int = 1,
               thread_count: int = 1, reps: int = 20) -> dict[str, dict[str, float]]:
    """The packed binary 1×1 (pack + XNOR-popcount GEMM + folded affine) vs PyTorch's 32-bit 1×1 conv.

    Same shape (``batch × C × size × size`` → C channels). The 32-bit conv is timed in
    both memory formats and the faster is the baseline.
    """
    from cpnas.deploy import kernels
    from cpnas.deploy.packed import PackedConv1x1

    res: dict[str, dict[str, float]] = {}
    g = torch.Generator().manual_seed(0)
    for c in channels:
        conv = BinaryConv2d(c, c, 1, bias=False)
        with torch.no_grad():
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=g))
        packed = PackedConv1x1.fold(conv, torch.ones(c, dtype=torch.float64), torch.zeros(c, dtype=torch.float64))
        x = torch.randn(batch, c, size, size, generator=g)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        w = torch.randn(c, c, 1, 1, generator=g)
        rows, _ = packed._rows(x_cl)
        bits = kernels.pack_signs(rows)
        with threads(thread_count), torch.no_grad():
            fp32_cl = median_ms(lambda: torch.nn.functional.conv2d(x_cl, w), reps)
            fp32_nchw = median_ms(lambda: torch.nn.functional.conv2d(x, w), reps)
            packed_ms = median_ms(lambda: packed(x_cl), reps)
            gemm_ms = median_ms(lambda: kernels.xnor_gemm(bits, packed.weight_t, packed.scale, packed.bias, c), reps)
        fp32 = min(fp32_cl, fp32_nchw)
        res[str(c)] = {"fp32_ms": fp32, "fp32_format": "channels_last" if fp32_cl <= fp32_nchw else "contiguous",
                       "packed_ms": packed_ms, "xnor_gemm_ms": gemm_ms, "speedup": fp32 / packed_ms,
                       "gemm_speedup": fp32 / gemm_ms}
    return res


TIME_CLASSES = ("binary_conv", "xnor_1x1", "float_depthwise", "pooling", "real_layers", "other")
"""Kernel classes of :func:`time_shares`."""


def time_shares(packed: nn.Module, x: torch.Tensor, reps: int = 3) -> dict[str, float]:
    """ms per forward of the packed network spent in each class of kernel (forward hooks), and the rest.

    ``binary_conv``: sep_conv / dil_conv as one extension call (sign, int8 depthwise,
    XNOR-popcount pointwise, folded BN); ``xnor_1x1``: the other packed 1×1 convs
    (preprocessing, factorized reduce); ``float_depthwise``: depthwise convs whose
    input stays real (Table 2's ``*``); ``pooling``: 3×3 pools; ``real_layers``: stem,
    BN, classifier; ``other``: node sums, concatenations, slicing, Python. These are
    timed op by op (``total``). With each cell one extension call, ``planned_stem``,
    ``planned_cells`` and ``planned_head`` (pooling and classifier) split the forward
    (``planned_total``).
    """
    from cpnas.deploy.packed import PackedConv1x1, PackedDepthwise, PackedDilConv, PackedPool, PackedSepConv

    kinds = (((PackedSepConv, PackedDilConv), "binary_conv"), (PackedConv1x1, "xnor_1x1"),
             (PackedDepthwise, "float_depthwise"), ((PackedPool, nn.MaxPool2d, nn.AvgPool2d), "pooling"),
             ((nn.Conv2d, nn.BatchNorm2d, nn.AdaptiveAvgPool2d, nn.Linear), "real_layers"))
    spent = {name: 0.0 for name in TIME_CLASSES if name != "other"}
    starts: dict[int, float] = {}
    handles = []
    timed: list[str] = []
    for path, m in packed.named_modules():
        name = next((n for t, n in kinds if isinstance(m, t)), None)
        if name is None or any(path.startswith(p + ".") for p in timed):
            continue  # the outermost classified module holds the time
        timed.append(path)
        handles.append(m.register_forward_pre_hook(lambda mod, a: starts.__setitem__(id(mod), time.perf_counter())))
        handles.append(m.register_forward_hook(
            lambda mod, a, out, name=name: spent.__setitem__(name, spent[name] + time.perf_counter() - starts[id(mod)])))
    planned = getattr(packed, "use_plans", False)
    try:
        packed.use_plans = False
        packed(x)  # warm-up
        spent = {k: 0.0 for k in spent}
        start = time.perf_counter()
        for _ in range(reps):
            packed(x)
        total = (time.perf_counter() - start) / reps
    finally:
        packed.use_plans = planned
        for h in handles:
            h.remove()
    shares = {k: 1e3 * v / reps for k, v in spent.items()}
    shares["other"] = 1e3 * total - sum(shares.values())
    shares["total"] = 1e3 * total
    if planned:
        packed(x)
        packed.clock = clock = {}
        try:
            for _ in range(reps):
                packed(x)
        finally:
            packed.clock = None
        shares.update({f"planned_{k}": 1e3 * v / reps for k, v in clock.items()})
        shares["planned_total"] = sum(shares[f"planned_{k}"] for k in clock)
    return shares


def file_size(packed: nn.Module, model: nn.Module, image_shape: Sequence[int]) -> dict[str, Any]:
    """Bytes of the packed file and its payload, against Table 3's memory accounting of ``model``."""
    from cpnas.deploy.packed import payload_bits, to_bytes
    from cpnas.efficiency import profile

    prof = profile(model, tuple(image_shape))
    blob = to_bytes(packed)
    payload = payload_bits(packed)
    return {"file_bytes": len(blob), "file_mbit": 8 * len(blob) / 1e6,
            "payload_mbit": sum(payload.values()) / 1e6,
            "payload_mbit_excl_bn_stats": (payload["sign_words"] + payload["real"]) / 1e6,
            "sign_words_mbit": payload["sign_words"] / 1e6, "real_mbit": payload["real"] / 1e6,
            "table3_mbit": prof.memory_mbit, "table3_mbit_excl_bn": prof.without_norm().memory_mbit,
            "flops_m": prof.flops_m}


def macs_split(model: nn.Module, image_shape: Sequence[int]) -> dict[str, float]:
    """Per-image MACs (M) of the binary depthwise convs, the binary 1×1 convs and the real layers."""
    from cpnas.efficiency import profile

    modules = dict(model.named_modules())
    split = {"binary_depthwise_macs_m": 0.0, "binary_pointwise_macs_m": 0.0, "real_macs_m": 0.0}
    for row in profile(model, tuple(image_shape)).layers:
        m = modules.get(row.name)
        if isinstance(m, BinaryConv2d) and m.groups > 1:
            split["binary_depthwise_macs_m"] += (row.binary_macs + row.real_macs) / 1e6
        elif row.binary_macs:
            split["binary_pointwise_macs_m"] += row.binary_macs / 1e6
            split["real_macs_m"] += row.real_macs / 1e6
        else:
            split["real_macs_m"] += row.real_macs / 1e6
    return split


def build_pair(genotype: Genotype, cfg: Config, *, dataset: str = "cifar10", size: str = "small",
               checkpoint: str | os.PathLike | None = None, seed: int = 0) -> tuple[nn.Module, nn.Module, dict]:
    """The 1-bit evaluation network (trained from ``checkpoint`` or random) and its 32-bit twin, no aux tower.

    ``checkpoint`` is a ``cpnas train`` run folder (``checkpoint.pt`` with key
    ``model``, ``config.json``); its genotype, channels and cells are used, and
    ``genotype`` must match it. Returns ``(binary, real, info)``.
    """
    from cpnas.binary import BINARY, REAL
    from cpnas.evaluation import channels_of, train_config
    from cpnas.io import load_checkpoint, read_json
    from cpnas.networks import NetworkCIFAR, NetworkImageNet

    tcfg = train_config(cfg, dataset)
    channels, layers, num_classes, state = channels_of(tcfg, size), tcfg.layers, 10, None
    source = (f"random weights (seed {seed}), random BN affine terms, BN statistics of {CALIBRATION_IMAGES} images and "
              f"{CALIBRATION_IMAGES} N(0,1) inputs")
    if checkpoint is not None:
        run = Path(checkpoint)
        if not (run / "checkpoint.pt").is_file():
            raise CpnasError(f"{run}: no checkpoint.pt here; give a 'cpnas train' run folder (--out of cpnas train)")
        metrics = read_json(run / "metrics.json") if (run / "metrics.json").is_file() else {}
        run_cfg = read_json(run / "config.json") if (run / "config.json").is_file() else {}
        if run_cfg.get("precision", "binary") != "binary":
            raise CpnasError(f"{run}: precision {run_cfg.get('precision')!r} has real activations somewhere; "
                             "the packed form needs a 'binary' run")
        dataset = run_cfg.get("dataset", dataset)
        train = run_cfg.get("train", {})
        channels = metrics.get("channels") or train.get(f"channels_{run_cfg.get('size', size)}", channels)
        layers = metrics.get("layers") or train.get("layers", layers)
        num_classes = metrics.get("num_classes", num_classes)
        if run_cfg.get("genotype") and Genotype.from_dict(run_cfg["genotype"]) != genotype:
            raise CpnasError(f"{run} was trained on another genotype than the one given; pass the run's own "
                             f"genotype ({run_cfg.get('genotype_path', 'see its config.json')})")
        state = load_checkpoint(run / "checkpoint.pt")["model"]
        source = f"trained weights from {run}"
    if dataset == "imagenet":
        num_classes = 1000 if checkpoint is None else num_classes
    net_cls = NetworkImageNet if dataset == "imagenet" else NetworkCIFAR
    torch.manual_seed(seed)
    try:
        binary = net_cls(genotype, C=channels, num_classes=num_classes, layers=layers, auxiliary=state is not None
                         and any(k.startswith("auxiliary.") for k in state), precision=BINARY)
        real = net_cls(genotype, C=channels, num_classes=num_classes, layers=layers, auxiliary=False, precision=REAL)
    except ValueError as exc:
        raise CpnasError(f"cannot build the {dataset} network with C={channels}, {layers} cells: {exc}") from None
    if state is None:
        trained_looking_bn(binary, seed)
        trained_looking_bn(real, seed)
    else:
        try:
            binary.load_state_dict(state)
        except RuntimeError as exc:
            raise CpnasError(f"{checkpoint}: the checkpoint does not fit the network ({str(exc).splitlines()[0]})") from None
    binary.auxiliary = None
    info = {"dataset": dataset, "channels": channels, "layers": layers, "num_classes": num_classes,
            "image_size": tcfg.image_size, "weights": source}
    return binary.eval(), real.eval(), info


def deploy_report(genotype: Genotype, cfg: Config, *, dataset: str = "cifar10", size: str = "small",
                  checkpoint: str | os.PathLike | None = None, data_root: str | os.PathLike | None = None,
                  batches: Sequence[int] = (1,), thread_counts: Sequence[int] | None = None,
                  kernel_channels: Sequence[int] = KERNEL_CHANNELS, exact_images: int = 8, reps: int = 5,
                  seed: int = 0, packed_file: str | os.PathLike | None = None,
                  compile_fp32: bool = True, isas: Sequence[str] = ()) -> dict[str, Any]:
    """Pack ``genotype``'s network, check it against the simulated one, time them, size the file.

    The 32-bit baseline is the faster, per batch and thread count, of eager PyTorch in
    ``channels_last`` (oneDNN) and, with ``compile_fp32``, ``torch.compile`` of it.
    ``latency_ms`` holds the first batch at the first thread count
    (``speedup_end_to_end`` = fp32 / packed there), the ``latency`` table every
    measured batch and thread count. ``packed_file``: also write the packed model there
    (atomically). ``isas``: also time the planned network on the builds of the extension for
    these instruction sets (``packed_<isa>``, e.g. the AVX2 path on an AVX-512 machine), checked
    bit-identical to the default build first. Without a C++ toolchain: one log line, and only the 32-bit and the
    simulated 1-bit networks are timed (``path: "simulated"``).
    """
    from cpnas.deploy import kernels
    from cpnas.deploy.packed import PackedMeta, PackedNetwork, pack_network, simulate

    unavailable = kernels.toolchain_missing()
    if unavailable is None:
        try:
            kernels.extension()
        except CpnasError as exc:
            unavailable = str(exc)
    if unavailable is not None:
        log.warning("packed 1-bit kernels unavailable (%s): timing the simulated 1-bit network instead", unavailable)
    binary, real, info = build_pair(genotype, cfg, dataset=dataset, size=size, checkpoint=checkpoint, seed=seed)
    image_shape = (3, info["image_size"], info["image_size"])
    images, images_desc = sample_images(max(exact_images, CALIBRATION_IMAGES), dataset=info["dataset"],
                                        image_size=info["image_size"], data_root=data_root, seed=seed)
    noise = torch.randn((max(exact_images, CALIBRATION_IMAGES), *image_shape),
                        generator=torch.Generator().manual_seed(seed))
    if checkpoint is None:
        # both kinds of input the check uses: a channel constant over the calibration set gets variance 0, and BN
        # then maps its one value to ±0 + rounding noise × 1/√eps, a tie each net resolves its own way
        calibration = torch.cat([images, noise])
        calibrate_bn(binary, calibration)
        calibrate_bn(real, calibration)
    thread_counts = tuple(thread_counts or (torch.get_num_threads(),))
    real_cl = real.to(memory_format=torch.channels_last)
    fp32 = fp32_baselines(real_cl, compile_fp32)
    if unavailable is not None:
        nets = {**fp32, "simulated": lambda x: simulate(binary, x)}
        table = _with_fp32_baseline(network_latency(nets, image_shape, batches=batches, thread_counts=thread_counts,
                                                    reps=reps))
        first = table[f"batch{batches[0]}"][f"threads{thread_counts[0]}"]
        return {"path": "simulated", "unavailable": unavailable,
                "latency_ms": {k: first[k] for k in ("fp32", "simulated")}, "latency": table,
                "latency_batch": batches[0], "latency_threads": thread_counts[0],
                "network": {**info, "size": size, "genotype": genotype.to_dict()}, "machine": machine()}
    meta = PackedMeta(genotype=genotype.to_dict(), dataset=info["dataset"], channels=info["channels"],
                      layers=info["layers"], num_classes=info["num_classes"])
    packed = pack_network(binary, meta)
    fresh = torch.randn((exact_images, *image_shape), generator=torch.Generator().manual_seed(seed + 1))
    checks = {"images": exactness(binary, packed, images[:exact_images]),
              "random": exactness(binary, packed, fresh)}
    op_by_op = PackedNetwork(packed.body, meta)
    op_by_op.use_plans = False
    nets = {**fp32, "simulated": lambda x: simulate(binary, x), "packed": packed, "packed_op_by_op": op_by_op}
    for isa in isas:
        nets[f"packed_{isa}"] = narrower = PackedNetwork(packed.body, meta)
        narrower.isa = isa
        if not torch.equal(narrower(images[:2]), packed(images[:2])):
            raise CpnasError(f"the {isa} build of the extension computes other logits than the default build")
    table = _with_fp32_baseline(network_latency(nets, image_shape, batches=batches, thread_counts=thread_counts,
                                                reps=reps))
    first = table[f"batch{batches[0]}"][f"threads{thread_counts[0]}"]
    kernel = kernel_1x1(kernel_channels, thread_count=thread_counts[0]) if kernel_channels else {}
    from cpnas.efficiency import profile

    flops_real, flops_binary = profile(real, image_shape).flops, profile(binary, image_shape).flops
    report_file = file_size(packed, binary, image_shape)
    with threads(thread_counts[0]):
        shares = time_shares(packed, torch.randn((batches[0], *image_shape), generator=torch.Generator().manual_seed(2)))
    if packed_file is not None:
        from cpnas.deploy.packed import to_bytes
        from cpnas.io import write_bytes

        write_bytes(packed_file, to_bytes(packed))
        report_file["path"] = str(packed_file)
    return {
        "path": "packed",
        "exact": all(c["exact"] for c in checks.values()),
        "max_abs_diff": max(c["max_abs_diff"] for c in checks.values()),
        "latency_ms": {k: v for k, v in first.items() if isinstance(v, float) and k != "speedup_end_to_end"},
        "isa_paths": {isa: kernels.extension(isa).simd_path() for isa in isas},
        "latency_batch": batches[0], "latency_threads": thread_counts[0],
        "fp32_baseline": first["fp32_baseline"],
        "speedup_end_to_end": first["speedup_end_to_end"],
        "speedup_packed_vs_fp32": first["speedup_end_to_end"],
        "speedup_flops_estimate": flops_real / flops_binary,
        "paper_speedup_vs_wrn22": PAPER_SPEEDUP,
        "kernel_1x1_speedup": {c: r["speedup"] for c, r in kernel.items()},
        "kernel_1x1": kernel,
        "latency": table,
        "exactness": checks, "exactness_inputs": {"images": images_desc, "random": f"{exact_images} N(0,1) inputs"},
        "file": report_file,
        "macs": macs_split(binary, image_shape),
        "packed_time_ms": shares,
        "convs": packed.counts(),
        "cells_planned": f"{packed.planned_cells()} of {len(packed.body.cells)}",
        "network": {**info, "size": size, "genotype": genotype.to_dict()},
        "machine": machine(),
    }


def machine() -> dict[str, Any]:
    """The CPU, the kernel paths compiled in (when the extension is built), the load, torch's version."""
    from cpnas.deploy import kernels
    from cpnas.dispatch import cpu_info

    out: dict[str, Any] = {"cpu": cpu_info()["model"], "cpus": os.cpu_count(), "torch": torch.__version__,
                           "load_average_1min": os.getloadavg()[0]}
    if kernels._ext is not None:
        out.update(simd_path=kernels._ext.simd_path(), depthwise_path=kernels._ext.depthwise_path())
    else:
        out.update(simd_path="simulated", depthwise_path="simulated")
    return out


def fp32_baselines(real_cl: nn.Module, compile_fp32: bool) -> dict[str, Callable[[torch.Tensor], Any]]:
    """The 32-bit network eager (``channels_last``, oneDNN) and, if asked and it compiles, ``torch.compile``-d."""
    nets: dict[str, Callable[[torch.Tensor], Any]] = {"fp32_eager": lambda x: real_cl(x)}
    if compile_fp32:
        compiled = torch.compile(real_cl)
        probe = torch.zeros(1, *_input_shape(real_cl)).contiguous(memory_format=torch.channels_last)
        try:
            with torch.no_grad():
                compiled(probe)
        except Exception as exc:  # noqa: BLE001 — any compiler failure leaves the eager baseline, said in the log
            log.warning("torch.compile of the 32-bit network failed (%s); the baseline is eager PyTorch",
                        str(exc).splitlines()[0][:200])
        else:
            nets["fp32_compiled"] = lambda x: compiled(x)
    return nets


def _input_shape(net: nn.Module) -> tuple[int, int, int]:
    from cpnas.networks import NetworkImageNet

    return (3, 224, 224) if isinstance(net, NetworkImageNet) else (3, 32, 32)


def _with_fp32_baseline(table: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Each entry gains ``fp32`` (the faster baseline), ``fp32_baseline`` (which) and ``speedup_end_to_end``."""
    for per_t in table.values():
        for ms in per_t.values():
            name = min((k for k in ("fp32_eager", "fp32_compiled") if k in ms), key=lambda k: ms[k])
            ms["fp32"] = ms[name]
            ms["fp32_baseline"] = "torch.compile" if name == "fp32_compiled" else "eager channels_last"
            if "packed" in ms:
                ms["speedup_end_to_end"] = ms["fp32"] / ms["packed"]
    return table


def found_cell(scale: str = "cpu") -> tuple[Genotype, str]:
    """The cell of ``scale``'s CP-NAS search (seed 0), or DARTS_V2 when that search is not here; and its label."""
    from cpnas.genotype import DARTS_V2, load_genotype
    from cpnas.paths import portable
    from cpnas.tables import default_genotype_path

    path = default_genotype_path(scale)
    if path.is_file():
        return load_genotype(path), f"CP-NAS cell of the {scale} search (seed 0, {portable(path)})"
    return DARTS_V2, f"DARTS_V2 (no {scale} CP-NAS search in {portable(path.parent)})"


BENCH_PLANS: dict[str, dict[str, Any]] = {
    "smoke": {"batches": (1,), "thread_counts": (1,), "paper_size": False, "kernel_channels": (64, 128),
              "compile_fp32": False},
}
"""What :func:`bench` measures at a scale; other scales: batches 1 and 32, 1 and 2 threads, the paper's small
size too, and the 1×1 kernel at every C of :data:`KERNEL_CHANNELS`. Smoke runs in CI seconds."""
FULL_PLAN = {"batches": (1, 32), "thread_counts": (1, 2), "paper_size": True, "kernel_channels": KERNEL_CHANNELS,
             "compile_fp32": True}


def bench(scale: str = "cpu", *, data_root: str | os.PathLike | None = None) -> dict[str, Any]:
    """``make bench`` (e) and notebook 06: :func:`deploy_report` of ``scale``'s found cell at its small size.

    And at the paper's small size (C = 56), with the plan of :data:`BENCH_PLANS`.
    Random weights (timing needs no trained checkpoint; exactness is checked on the
    same weights). About a minute on two busy cores at the full plan.
    """
    from cpnas.config import get_config

    plan = BENCH_PLANS.get(scale, FULL_PLAN)
    genotype, label = found_cell(scale)
    res: dict[str, Any] = {"genotype": label, "scale": scale}
    for name, cfg_scale in (("scale", scale), ("paper", "paper")):
        if name == "paper" and not plan["paper_size"]:
            continue
        res[name] = deploy_report(genotype, get_config(cfg_scale), size="small", data_root=data_root,
                                  batches=plan["batches"], thread_counts=plan["thread_counts"],
                                  kernel_channels=plan["kernel_channels"] if name == "scale" else (), reps=5,
                                  compile_fp32=plan["compile_fp32"])
    res["kernel_1x1"] = res["scale"]["kernel_1x1"]
    res["kernel_1x1_threads2"] = (kernel_1x1(plan["kernel_channels"], thread_count=2)
                                  if 2 in plan["thread_counts"] else None)
    return res


def markdown(res: dict[str, Any]) -> str:
    """The ``make bench`` section of :func:`bench`'s result."""
    lines = [f"## (e) 1-bit inference measured: packed XNOR-popcount vs simulated 1-bit vs 32-bit (`cpnas deploy`)",
             "", f"Cell: {res['genotype']}; random weights, BN statistics from {CALIBRATION_IMAGES} images and "
             f"{CALIBRATION_IMAGES} N(0,1) inputs. Median ms per forward (per image in brackets), the three nets "
             f"interleaved; the 1-min load average of the machine (shared with other jobs) is given per network.", "",
             "| network | batch | threads | fp32, faster of eager / torch.compile (ms) | simulated 1-bit (ms) | "
             "packed (ms) | packed vs fp32 | FLOPs estimate |", "|---|---|---|---|---|---|---|---|"]
    for key in ("scale", "paper")[: 1 + ("paper" in res)]:
        r = res[key]
        n = r["network"]
        for b, per_t in r["latency"].items():
            batch = int(b.removeprefix("batch"))
            for t, ms in per_t.items():
                lines.append(f"| C={n['channels']}, {n['layers']} cells | {batch} | {t.removeprefix('threads')} | "
                             + " | ".join(f"{ms[k]:.1f} ({ms[k] / batch:.2f})" for k in ("fp32", "simulated", "packed"))
                             + f" | {ms['fp32'] / ms['packed']:.2f}× | {r['speedup_flops_estimate']:.1f}× |")
    lines += ["", "| network | exact | max abs logit diff | XNOR integers compared | binary MACs: depthwise / 1×1 "
              "(M) | file (Mbit) | payload (Mbit) | Table 3 accounting (Mbit, with / without BN) | load |",
              "|---|---|---|---|---|---|---|---|---|"]
    for key in ("scale", "paper")[: 1 + ("paper" in res)]:
        r = res[key]
        f, m = r["file"], r["macs"]
        compared = sum(c["integers_compared"] for c in r["exactness"].values())
        lines.append(f"| C={r['network']['channels']} | {r['exact']} | {r['max_abs_diff']:.1e} | {compared:,} | "
                     f"{m['binary_depthwise_macs_m']:.1f} / {m['binary_pointwise_macs_m']:.1f} | {f['file_mbit']:.2f} | "
                     f"{f['payload_mbit_excl_bn_stats']:.2f} | {f['table3_mbit']:.2f} / {f['table3_mbit_excl_bn']:.2f} | "
                     f"{r['machine']['load_average_1min']:.1f} |")
    lines += ["", f"Where the packed network's time goes (ms per forward, batch {res['scale']['latency_batch']}, "
              f"{res['scale']['latency_threads']} thread(s), forward hooks):", "",
              "| network | sep/dil convs (int8 depthwise + XNOR 1×1) | other XNOR 1×1 convs | float depthwise convs | "
              "pooling | real layers (stem, BN, classifier) | other (sums, concat, Python) | total |",
              "|---|---|---|---|---|---|---|---|"]
    for key in ("scale", "paper")[: 1 + ("paper" in res)]:
        sh = res[key]["packed_time_ms"]
        lines.append(f"| C={res[key]['network']['channels']} | " + " | ".join(
            f"{sh[k]:.2f} ({100 * sh[k] / sh['total']:.0f} %)" for k in TIME_CLASSES) + f" | {sh['total']:.2f} |")
    lines += ["", f"Packed binary 1×1 alone (sign packing + XNOR-popcount + folded BN, {KERNEL_PIXELS}×{KERNEL_PIXELS}, "
              f"batch 1) vs the faster memory format of PyTorch's 32-bit 1×1 conv "
              f"({res['scale']['machine']['simd_path']} path, {res['scale']['machine']['cpu']}):", "",
              "| C | threads | fp32 (ms) | packed (ms) | speedup | GEMM alone speedup |", "|---|---|---|---|---|---|"]
    for t, table in (("1", res["kernel_1x1"]), ("2", res.get("kernel_1x1_threads2"))):
        for c, k in (table or {}).items():
            lines.append(f"| {c} | {t} | {k['fp32_ms']:.3f} | {k['packed_ms']:.3f} | {k['speedup']:.1f}× | "
                         f"{k['gemm_speedup']:.1f}× |")
    lines += ["", f"The paper's Table 3 estimates {PAPER_SPEEDUP}× (FLOPs of WRN-22 over FLOPs of its network, "
              "binary MACs counted /64); the FLOPs estimate column is the same convention for this network over its "
              "own 32-bit twin.", ""]
    return "\n".join(lines)
