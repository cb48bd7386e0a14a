"""Training settings measured on the FMD captures used for development (not the scored ones).

::

    python -m benchmarks.realnoise_levers --configs Confocal_BPAE_G --captures 1 2 \\
        --set ema_decay=0.995 --label ema0.995 --log /tmp/levers.jsonl

Trains ``gr2r`` with the ``fast`` preset (and the ``--set`` overrides of its
:class:`~napari_gr2r.engine.TrainConfig`) on each capture alone, denoises it with and without
test-time augmentation (``denoise(..., tta=True)``) and prints PSNR against the 50-frame
ground truth and against it at the capture's brightness (``psnr_k``, see
:func:`benchmarks.realnoise.add_gain_matched`), with the training and inference times.
One torch thread. A line of JSON per run goes to ``--log``.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import time
from pathlib import Path

import numpy as np

from . import realnoise
from .common import log, log_row, psnr
from .realnoise import CONFIGS, RANGE, brightness, load


def _value(text: str) -> object:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def capture_parser(module: str, doc: str | None, *, configs: list[str] | None, captures: list[int],
                   preset: str, example: str,
                   configs_help: str | None = None) -> argparse.ArgumentParser:
    """The arguments every real-noise run script takes: which captures, which preset with
    which changes (``--set``), and the JSON-lines log of its runs."""
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{module}", description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=configs, choices=list(CONFIGS),
                        help=configs_help)
    parser.add_argument("--captures", nargs="+", type=int, default=captures)
    parser.add_argument("--preset", default=preset)
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help=f"TrainConfig fields, e.g. {example}")
    parser.add_argument("--log", type=Path)
    return parser


def set_overrides(args: argparse.Namespace) -> dict[str, object]:
    """``--set``'s ``FIELD=VALUE`` items as TrainConfig overrides (values read as Python
    literals where they are, else as strings)."""
    return {k: _value(v) for k, v in (item.split("=", 1) for item in args.set)}


def _trace_point(trainer, event, raw: np.ndarray, gt: np.ndarray, k: float) -> dict:
    """PSNR against the ground truth of the run's current weights (runs without ``ema_decay``:
    the weights each validation scores), beside what the run itself sees (validation loss,
    estimated PSNR): benchmark code, the engine never looks at the ground truth."""
    import copy

    from napari_gr2r import engine

    model = copy.deepcopy(trainer.model)
    model.net.load_state_dict(trainer.net.state_dict())  # the live weights (no ema_decay)
    out = engine.denoise(model, raw, axes="YX", device="cpu", tta=1)  # the network alone
    return dict(step=event.step, val_loss=event.val_loss, estimated_psnr=event.estimated_psnr,
                loss=event.loss, psnr=round(psnr(gt, out, RANGE), 3),
                psnr_k=round(psnr(k * gt, out, RANGE), 3))


def _calibration(config: str):
    """The noise calibration from the configuration's four captures (repeated captures of one
    field: ``engine.calibrate_noise``, no ground truth involved)."""
    from napari_gr2r import engine

    frames = np.stack([load(config, c)[0] for c in (1, 2, 3, 4)])
    return engine.calibrate_noise(frames, axes="TYX")


def _inputs(config: str, capture: int, overrides: dict, preset: str, noise: str):
    """``(raw, gt, train config, calibration or None)`` of one lever run (``gr2r``, seed 0, a
    2D network, ``preset`` with ``overrides``); one torch thread."""
    import torch

    from napari_gr2r import engine

    torch.set_num_threads(1)
    raw, gt = load(config, capture)
    cfg = engine.TrainConfig.from_preset(preset, **{"method": "gr2r", "seed": 0,
                                                    "net_dims": "2d", **overrides})
    return raw, gt, cfg, (_calibration(config) if noise == "calibrated" else None)


def trainer_for(config: str, capture: int, overrides: dict, preset: str = "fast",
                noise: str = "fitted"):
    """``(trainer, raw, gt)``: the lever runs' trainer on one capture, not yet run."""
    from napari_gr2r import engine

    raw, gt, cfg, calibration = _inputs(config, capture, overrides, preset, noise)
    return engine.Trainer(raw, "YX", cfg, device="cpu", noise=calibration), raw, gt


def unshuffle(image: np.ndarray, s: int) -> list[np.ndarray]:
    """Pixel-shuffle downsampling (AP-BSN's PD): the ``s * s`` sub-images of every ``s``-th
    pixel, in which noise correlated between neighbours is correlated only at ``s`` times the
    distance. Rows and columns beyond a multiple of ``s`` are left out."""
    h, w = (n // s * s for n in image.shape)
    return [image[i:h:s, j:w:s] for i in range(s) for j in range(s)]


def reshuffle(parts: list[np.ndarray], s: int, shape: tuple[int, ...]) -> np.ndarray:
    """The image :func:`unshuffle` took apart (pixels it left out stay 0)."""
    out = np.zeros(shape, np.float32)
    for k, part in enumerate(parts):
        i, j = divmod(k, s)
        out[i::s, j::s][:part.shape[0], :part.shape[1]] = part
    return out


def vst_line(raw: np.ndarray) -> tuple[float, float]:
    """``(a, b)`` of the noise variance ``a * signal + b`` fitted on the capture itself in its
    own units (:meth:`NoiseLevel.estimate`, the engine's training fit), for :func:`vst`."""
    from napari_gr2r.engine.noise.level import NoiseLevel

    level = NoiseLevel.estimate([raw.astype(np.float32)[None, None]], np.random.default_rng(0))
    return float(level.a[0]), float(level.b[0])


def vst(image: np.ndarray, a: float, b: float) -> np.ndarray:
    """The generalised Anscombe transform of noise of variance ``a * x + b``: the noise of the
    result has unit variance whatever the signal (``a = 0``: a division by the noise's SD).
    :func:`benchmarks.baselines.anscombe` in this parametrisation, written out as the lever's
    runs were made (a network's training follows its input to the last bit)."""
    if a <= 0:
        return (image / np.sqrt(max(b, 1e-12))).astype(np.float32)
    return (2 / a * np.sqrt(np.maximum(a * image + 3 / 8 * a * a + b, 0))).astype(np.float32)


def inverse_vst(z: np.ndarray, a: float, b: float, kind: str = "unbiased") -> np.ndarray:
    """Back from :func:`vst`: ``algebraic`` inverts the transform; ``unbiased`` inverts the
    transform's expected value (Makitalo & Foi 2011's closed form), which is what a denoiser
    of the transformed image estimates."""
    if a <= 0:
        return (z * np.sqrt(max(b, 1e-12))).astype(np.float32)
    if kind == "algebraic":
        d = z
        x = d * d / 4 - 3 / 8
    else:
        d = np.maximum(z, 0.8)  # the closed form's powers of 1/d diverge towards 0
        x = (d * d / 4 + np.sqrt(1.5) / 4 / d - 11 / 8 / d ** 2 + 5 * np.sqrt(1.5) / 8 / d ** 3
             - 1 / 8)
    return (a * x - b / a).astype(np.float32)


def _denoise(model, raw: np.ndarray, views: int, shuffle: int) -> np.ndarray:
    from napari_gr2r import engine

    if shuffle <= 1:
        return engine.denoise(model, raw, axes="YX", device="cpu", tta=views)
    return reshuffle([engine.denoise(model, part, axes="YX", device="cpu", tta=views)
                      for part in unshuffle(raw, shuffle)], shuffle, raw.shape)


def run(config: str, capture: int, overrides: dict, preset: str = "fast",
        trace_every: int = 0, noise: str = "fitted", shuffle: int = 1,
        vst_inverse: str | None = None, supervised: str | None = None,
        lowpass: tuple[float, ...] = ()) -> dict:
    """One lever run; ``shuffle`` > 1 trains on the capture's pixel-shuffled sub-images
    (:func:`unshuffle`) and denoises each of them before putting the image back together;
    ``vst_inverse`` trains on the capture's variance-stabilised image (:func:`vst`) and brings
    the denoised image back with that inverse (:func:`inverse_vst`); ``supervised`` trains
    ``n2c`` instead of ``gr2r``, the same network, preset and start, on the ground truth
    (``"gt"``) or on the ground truth at the capture's brightness (``"k"``: ``k gt``, which
    ``psnr_k`` scores against): the most that network and budget can reach. For each
    ``lowpass`` sigma the run also scores the mean over the flips with the input's local
    brightness put back (:func:`with_local_brightness`)."""
    from napari_gr2r import engine

    if supervised:
        if shuffle > 1 or vst_inverse:
            raise SystemExit("--supervised trains on the capture itself: no --pixel-shuffle or "
                             "--vst with it.")
        overrides = {"method": "n2c", **overrides}
    raw, gt, cfg, calibration = _inputs(config, capture, overrides, preset, noise)
    t0 = time.perf_counter()  # the trainer's setup (noise fit) and run, as the engine's user waits
    line = None
    if vst_inverse:
        line = vst_line(raw)
        source = vst(raw, *line)
    else:
        source = raw
    data = source if shuffle <= 1 else unshuffle(source, shuffle)
    k = brightness(raw, gt)
    target = None
    if supervised:
        target = gt if supervised == "gt" else (k * gt).astype(np.float32)
    trainer = engine.Trainer(data, "YX", cfg, device="cpu", noise=calibration, target=target)
    trace, traced_s = [], 0.0
    for event in trainer.iter_fit():
        if trace_every and isinstance(event, engine.TrainingProgress) and event.validated \
                and event.step % trace_every == 0:
            t2 = time.perf_counter()
            trace.append(_trace_point(trainer, event, raw, gt, k))
            traced_s += time.perf_counter() - t2
    train_s = time.perf_counter() - t0 - traced_s
    model = trainer.model
    row = dict(config=config, capture=capture, overrides=overrides, preset=preset,
               train_s=round(train_s, 1), best_step=model.best_step, k=round(k, 4),
               noise=noise, **({"pixel_shuffle": shuffle} if shuffle > 1 else {}),
               **({"supervised": supervised} if supervised else {}),
               **({"vst": vst_inverse, "vst_line": [round(v, 5) for v in line]}
                  if line else {}))
    if trace:
        row["trace"] = trace
    for views in (1, 2, 4, 8):
        t1 = time.perf_counter()
        out = _denoise(model, source, views, shuffle)
        if line:
            out = inverse_vst(out, *line, kind=vst_inverse)
        tag = "plain" if views == 1 else f"tta{views}"
        row[f"{tag}_s"] = round(time.perf_counter() - t1, 2)
        row[f"{tag}_psnr"] = round(psnr(gt, out, RANGE), 3)
        row[f"{tag}_psnr_k"] = round(psnr(k * gt, out, RANGE), 3)
    for sigma in lowpass:
        local = with_local_brightness(out, raw, sigma)
        row[f"lowpass{sigma:g}_psnr"] = round(psnr(gt, local, RANGE), 3)
        row[f"lowpass{sigma:g}_psnr_k"] = round(psnr(k * gt, local, RANGE), 3)
    return row


def with_local_brightness(out: np.ndarray, raw: np.ndarray, sigma: float) -> np.ndarray:
    """``out`` plus a Gaussian low-pass (``sigma`` pixels, mirrored at the border) of what
    the denoiser took from ``raw``: the output then follows the input's brightness over
    regions of that size, where zero-mean noise averages away."""
    from scipy.ndimage import gaussian_filter

    taken = np.asarray(raw, np.float64) - out
    return (out + gaussian_filter(taken, sigma, mode="reflect")).astype(np.float32)


def distinct_captures(keys) -> set[tuple[str, int]]:
    """The ``(config, capture)`` keys whose raw images differ: of captures with the same image
    (``WideField_BPAE_B_2`` repeats ``_1`` in the dataset), the first in sorted order."""
    seen: dict = {}
    for config, capture in sorted(keys):
        seen.setdefault(load(config, capture)[0].tobytes(), (config, capture))
    return set(seen.values())


def compare(logs: list[Path], baseline: str, configs: list[str] | None = None) -> str:
    """A markdown table of every label in ``logs`` against the runs labelled ``baseline``, on
    the captures both ran (distinct images only: a capture whose raw image repeats an earlier
    one, as ``WideField_BPAE_B_2`` repeats ``_1``, is counted once; only ``configs`` where
    given). ``plain`` PSNR."""
    rows = [json.loads(line) for path in logs for line in path.read_text().splitlines()
            if line.strip()]
    base = {(r["config"], r["capture"]): r for r in rows if r["label"] == baseline
            and (configs is None or r["config"] in configs)}
    if not base:
        raise SystemExit(f"no runs labelled {baseline!r} in {', '.join(map(str, logs))}")
    distinct = distinct_captures(base)
    lines = ["| runs | captures | mean vs baseline (dB) | higher on | lowest (capture) | highest | "
             "median training s (baseline) |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for label in dict.fromkeys(r["label"] for r in rows if r["label"] != baseline):
        pairs = [(r, base[key]) for r in rows if r["label"] == label
                 and (key := (r["config"], r["capture"])) in distinct]
        if not pairs:
            continue
        d = np.array([r["plain_psnr"] - b["plain_psnr"] for r, b in pairs])
        low = pairs[int(d.argmin())][0]
        lines.append(
            f"| `{label}` | {len(d)} | {d.mean():+.3f} | {int((d > 0).sum())} | {d.min():+.2f} "
            f"({low['config']}_{low['capture']}) | {d.max():+.2f} | "
            f"{np.median([r['train_s'] for r, _ in pairs]):.1f} "
            f"({np.median([b['train_s'] for _, b in pairs]):.1f}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = capture_parser(
        "realnoise_levers", __doc__, configs=None, captures=[1, 2], preset="fast",
        example="ema_decay=0.995 lr=3e-3",
        configs_help="the configurations to run (default Confocal_BPAE_G); with --compare, "
                     "the ones to compare on (default: all in the logs)")
    parser.add_argument("--trace-every", type=int, default=0, metavar="STEPS",
                        help="denoise and score the current weights at every validation whose "
                             "step is a multiple of STEPS (0: no trace)")
    parser.add_argument("--noise", choices=["fitted", "calibrated"], default="fitted",
                        help="the generated noise's level: fitted on the capture (default), or "
                             "calibrated from the configuration's four captures")
    parser.add_argument("--pixel-shuffle", type=int, default=1, metavar="S",
                        help="train on the capture's S*S pixel-shuffled sub-images and denoise "
                             "each (AP-BSN's downsampling against correlated noise; 1: off)")
    parser.add_argument("--vst", choices=["unbiased", "algebraic"], default=None,
                        metavar="INVERSE",
                        help="train on the capture's generalised Anscombe transform (the noise "
                             "line fitted on it) and invert with this inverse (default: off)")
    parser.add_argument("--supervised", choices=["gt", "k"], default=None, metavar="TARGET",
                        help="train n2c (supervised) with the same network, preset and start on "
                             "the ground truth (gt) or on it at the capture's brightness (k): "
                             "the ceiling of that network and budget, a diagnostic, not a lever")
    parser.add_argument("--data", type=Path, default=None, metavar="DIR",
                        help="a folder with raw/ and gt/ FMD PNGs instead of the vendored "
                             "256x256 crops (e.g. the full 512x512 captures)")
    parser.add_argument("--prior", type=Path, nargs="+", default=None, metavar="PT",
                        help="start networks that take the prior from these weights instead of "
                             "the shipped ones (an ensemble: member i from the i-th given, the "
                             "others keep theirs), to measure candidate priors built by "
                             "scripts/make_prior.py")
    parser.add_argument("--lowpass", type=float, nargs="+", default=(), metavar="SIGMA",
                        help="also score the output (the mean over the flips) with the input's "
                             "local brightness put back: a Gaussian low-pass of what the "
                             "denoiser took, at each SIGMA in pixels")
    parser.add_argument("--label", default="")
    parser.add_argument("--compare", nargs="+", type=Path, metavar="LOG",
                        help="train nothing: print every label in these logs against the runs "
                             "labelled --baseline")
    parser.add_argument("--baseline", default="noise_scale=1.0",
                        help="the label --compare measures against")
    args = parser.parse_args(argv)
    if args.compare:
        print(compare(args.compare, args.baseline, args.configs))
        return 0
    if (args.pixel_shuffle > 1 or args.vst) and args.supervised:
        parser.error("--supervised trains on the capture itself: not with --pixel-shuffle or "
                     "--vst")
    if (args.pixel_shuffle > 1 or args.vst) and args.trace_every:
        parser.error("--trace-every scores the network on the capture as it is: not with "
                     "--pixel-shuffle or --vst")
    if args.data is not None:
        realnoise.DATA = args.data
    if args.prior is not None:
        from napari_gr2r.engine.model import prior

        prior.MEMBER_PRIORS = (*args.prior, *prior.MEMBER_PRIORS[len(args.prior):])
        prior.prior_weights.cache_clear()
        # a candidate of another width (make_prior.py --width) fits networks of its width
        width = int(prior.prior_weights(0)["encoders.0.0.weight"].shape[0])
        prior.PRIOR_SHAPE = {**prior.PRIOR_SHAPE, "width": width}
    overrides = set_overrides(args)
    rows = []
    for config in args.configs or ["Confocal_BPAE_G"]:
        for capture in args.captures:
            row = dict(label=args.label, **run(config, capture, overrides, args.preset,
                                                 args.trace_every, args.noise,
                                                 args.pixel_shuffle, args.vst,
                                                 args.supervised, tuple(args.lowpass)),
                       **({"data": str(args.data)} if args.data is not None else {}),
                       **({"prior": " ".join(map(str, args.prior))} if args.prior is not None
                          else {}))
            rows.append(row)
            log_row(row, args.log)
    for tag in ("plain", "tta2", "tta4", "tta8", *(f"lowpass{s:g}" for s in args.lowpass)):
        log(f"{args.label} mean {tag}: PSNR {np.mean([r[f'{tag}_psnr'] for r in rows]):.3f}, "
            f"at the capture's brightness {np.mean([r[f'{tag}_psnr_k'] for r in rows]):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
