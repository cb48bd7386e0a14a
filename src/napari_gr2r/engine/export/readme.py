"""The README.md of a BioImage Model Zoo package: what the model is and how to use it."""

from __future__ import annotations

import math

from ..model.model import GR2RModel


def readme(model: GR2RModel, name: str, description: str, test_shape: tuple[int, ...],
           geometry: tuple[int, int, int], paper: tuple[str, str], software: tuple[str, str],
           license: str, attachment: str) -> str:
    """Markdown for the package's ``documentation`` field."""
    from ..._version import __version__

    cfg = model.config
    halo, step, min_size = geometry
    space = "ZYX" if model.dims == 3 else "YX"
    shape_line = (f"an image of shape {model.data_shape} with axes `{model.axes}`"
                  if model.data_shape else f"images with axes `{model.axes}` (shape not recorded)")
    noise = _noise_rows(model)
    correlation = model.noise_level.neighbour_correlation
    best = (f" The weights are those of step {model.best_step}, which scored best on held-out "
            "patches." if model.best_step and model.best_step != model.step else "")
    lines = [
        f"# {name}",
        "",
        description,
        "",
        "## Method",
        "",
        "A U-Net denoiser trained self-supervised, from the noisy images alone, with GR2R "
        f"(generative recorrupted-to-recorrupted; method `{cfg.method}`) in napari-gr2r "
        f"{__version__}: no clean images of the data were used" + (
            " (the network started from napari-gr2r's prior, trained on generated images "
            "with known noise, and adapted to the data)" if cfg.start == "prior" else "")
        + f". The network is {model.dims}D "
        f"(width {cfg.width}, depth {cfg.depth}, residual {bool(cfg.residual)}) and was trained "
        f"for {model.step} steps of {cfg.batch_size} patches of {cfg.patch_size} pixels "
        f"(Adam, peak learning rate {cfg.peak_lr:g}, preset `{cfg.preset}`, seed {cfg.seed})." + best,
        "",
        "## Training data",
        "",
        f"Trained on {shape_line}, {model.channels} channel(s); the network sees "
        f"{model.dims}D blocks ({space}).",
        "",
        "## Intensities and noise estimate",
        "",
        "The input is normalised per channel as `(x - low) / (high - low)` (the 1st and 99.9th "
        "percentiles of the training data) and the output is mapped back with the inverse, so "
        "the output has the input's units. The noise was estimated before training as a "
        "variance `a * signal + b` in normalised units; its typical standard deviation is "
        "given in the input's units.",
        "",
        "| channel | low | high | noise sd | a | b |",
        "| --- | --- | --- | --- | --- | --- |",
        *noise,
        "",
        f"Correlation of the noise between neighbouring pixels: {correlation:.2f} (0: white).",
        "",
        "## Inputs and outputs",
        "",
        f"Input `noisy` and output `denoised`: axes batch, channel, {', '.join(space.lower())}; "
        f"float32. Each spatial side is {min_size} + n x {step} pixels; the outer {halo} pixels "
        "of an output tile are cropped when tiling (the network's receptive radius, rounded up "
        f"to its down-sampling factor {step}). The test image has shape {tuple(test_shape)}.",
        "",
        *_how_to_use(model.channels, space, attachment, int(getattr(model.config, "tta", 1))),
        "## Citation",
        "",
        f"- {paper[0]} {paper[1]}",
        f"- {software[0]} {software[1]}",
        "",
        "## Licence",
        "",
        f"The weights are released under {license}. The architecture file (`gr2r_unet.py`) is "
        "part of napari-gr2r, BSD-3-Clause.",
        "",
    ]
    return "\n".join(lines)



def _noise_rows(model: GR2RModel) -> list[str]:
    """The rows of the noise table, one per channel, in the input's units."""
    rows = []
    for c in range(model.channels):
        scale = model.normalization.scale(c)
        sd = math.sqrt(max(model.noise_level.typical[c], 0.0)) * scale
        rows.append(
            f"| {c} | {model.normalization.low[c]:.6g} | {model.normalization.high[c]:.6g} "
            f"| {sd:.4g} | {model.noise_level.a[c]:.4g} | {model.noise_level.b[c]:.4g} |")
    return rows


def _how_to_use(channels: int, space: str, attachment: str, views: int = 1) -> list[str]:
    """The "How to use" section: Fiji, Python and napari-gr2r."""
    once = [] if views == 1 else [
        "",
        "The zoo's tools run the network once over the image. napari-gr2r denoises with this "
        f"model's mean over {views} flips and quarter turns of each tile (its `tta` setting), "
        "a little better for as many times the work; `napari-gr2r denoise --tta 1` gives "
        "the zoo's result.",
    ]
    return [
        "## How to use",
        "",
        "- Fiji: install deepImageJ, then *Plugins > deepImageJ > DeepImageJ Install Model*, "
        "choose this zip file, and run the model with *DeepImageJ Run* on an open image.",
        "- Python: `bioimageio.core.predict(model=\"package.zip\", inputs=image)` with an array "
        f"of shape (1, {channels}, {', '.join(space)}).",
        "- napari-gr2r: `engine.load_model(\"package.zip\")` reads the original model file "
        f"(`{attachment}`, attached) back, for denoising any size and further training.",
        *once,
        "",
    ]
