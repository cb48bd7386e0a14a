"""``napari-gr2r demo``: train and denoise the bundled samples and print the PSNR gained."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ._common import add_device_argument, device_for, train_with_bar


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    demo = subparsers.add_parser("demo", help="train and denoise the bundled samples, print PSNR")
    demo.add_argument("--sample", default="all",
                      choices=["all", "nuclei2d", "nuclei3d", "fmd_confocal"],
                      help="which bundled sample to train on (default: %(default)s)")
    demo.add_argument("--steps", type=int, help="training steps per sample (default: 460)")
    demo.add_argument("--method", default="gr2r", choices=["gr2r", "gr2r-paper"],
                      help="training objective, see 'train --help' (default: %(default)s)")
    demo.add_argument("--output-dir", help="also save the denoised images and models here "
                      "(default: save nothing)")
    add_device_argument(demo)
    return demo


def psnr(image: np.ndarray, reference: np.ndarray, peak: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB; the peak is the reference's range unless given."""
    reference = np.asarray(reference, np.float64)
    mse = float(np.mean((np.asarray(image, np.float64) - reference) ** 2))
    if peak is None:
        peak = float(reference.max() - reference.min())
    return 10 * np.log10(peak**2 / mse) if mse > 0 else float("inf")


def run(args: argparse.Namespace) -> int:
    from .. import engine
    from ..sample_data import SAMPLES, load_sample

    device_for(args)
    names = list(SAMPLES) if args.sample == "all" else [args.sample]
    print(f"napari-gr2r {__version__} demo: training {args.method} on the bundled samples "
          f"(fast preset, CPU threads {_threads()})")
    rows = []
    for name in names:
        noisy, clean, info = load_sample(name)
        axes = info["axes"]
        steps = args.steps or 460
        config = engine.TrainConfig.from_preset("fast", steps=steps, method=args.method, seed=0)
        print(f"\n{name}: {info['description']}\n  shape {noisy.shape} ({axes}), {noisy.dtype}, "
              f"{steps} steps")
        peak = info.get("data_range") or float(np.max(clean)) - float(np.min(clean))
        t0 = time.perf_counter()
        trainer = engine.Trainer(noisy, axes, config, device=args.device)
        train_with_bar(trainer, data_range=peak)  # its estimate at the peak printed below
        t_train = time.perf_counter() - t0
        t0 = time.perf_counter()
        denoised = engine.denoise(trainer.model, noisy, axes=axes, device=args.device)
        t_infer = time.perf_counter() - t0
        before, after = psnr(noisy, clean, peak), psnr(denoised, clean, peak)
        report = engine.assess(trainer.model, noisy, axes, device=args.device)
        shown = _what_the_reference_shows(denoised, noisy, clean, axes, info, peak)
        rows.append((name, before, after, shown, report.psnr_text(peak)))
        print(f"  trained in {t_train:.1f} s, denoised in {t_infer:.2f} s")
        print(f"  PSNR against the clean reference: noisy {before:.2f} dB -> denoised "
              f"{after:.2f} dB ({after - before:+.2f} dB)")
        if shown is not None:
            print(f"  the reference holds noise of its own ({info['reference_noise']}); "
                  f"without it the denoised image scores {shown:.2f} dB")
        print(f"  estimated without the reference: {report.psnr_text(peak)}")
        truth = after if shown is None else shown
        low, high = report.psnr_interval(peak)
        if not low <= truth <= high:
            print(f"  (the estimate misses: {report.psnr(peak) - truth:+.2f} dB off what the "
                  "reference shows, outside its interval)")
        if args.output_dir:
            from ..engine.io.formats import write_image

            folder = Path(args.output_dir)
            write_image(folder / f"{name}_denoised.tif", denoised, axes, info)
            engine.save_model(trainer.model, folder / f"{name}.gr2r.pt")
            print(f"  wrote {folder / (name + '_denoised.tif')} and {folder / (name + '.gr2r.pt')}")
    print("\nsummary (PSNR dB): " + "; ".join(
        f"{n} {b:.2f} -> {a:.2f} ("
        + ("" if s is None else f"{s:.2f} without the reference's own noise; ")
        + f"estimated {e})" for n, b, a, s, e in rows))
    return 0


def _what_the_reference_shows(denoised: np.ndarray, noisy: np.ndarray, clean: np.ndarray,
                              axes: str, info: dict, peak: float) -> float | None:
    """The denoised image's PSNR against the clean reference with the reference's own noise
    variance taken out of the error (None for a noise-free reference): an average of ``n``
    captures keeps ``1/n`` of one capture's; a real micrograph's is what the engine's noise
    fit finds on it."""
    if "reference_noise" not in info:
        return None
    frames = info.get("noise", {}).get("frames_averaged_in_clean")
    if frames:
        own = float(np.mean((np.asarray(noisy, np.float64) - clean) ** 2)) / frames
    else:
        from .. import engine

        own = engine.fit_noise(np.asarray(clean, np.float32), axes).sd ** 2
    mse = float(np.mean((np.asarray(denoised, np.float64) - clean) ** 2))
    return float(10 * np.log10(peak**2 / max(mse - own, mse * 1e-3)))


def _threads() -> int:
    import torch

    return torch.get_num_threads()
