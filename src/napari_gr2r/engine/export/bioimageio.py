"""Export a trained model as a BioImage Model Zoo package (``bioimageio.spec`` format 0.5).

The package is one zip that Fiji (deepImageJ), ilastik, BioEngine, QuPath and
``bioimageio.core`` run without napari-gr2r. It holds:

- ``rdf.yaml``: inputs and outputs with batch, channel and space axes; sizes a multiple of the
  network's down-sampling factor (``step``) and at least twice the halo; the halo is the
  network's receptive radius rounded up to that factor, so tiles padded by it line up with
  the pooling grid and blend without seams;
- ``scale_linear`` pre- and postprocessing with the model's stored per-channel normalisation
  and its inverse, so a zoo runner returns intensities in the input's units, like
  :func:`~napari_gr2r.engine.denoise`;
- weights as ``pytorch_state_dict`` (the architecture is a copy of :mod:`.networks`, which
  imports nothing but torch) and as ``torchscript``;
- a test input and the output of our own :func:`~napari_gr2r.engine.denoise` for it, a
  cover (noisy | denoised), a README, and the ``.gr2r.pt`` model file as an attachment, from
  which :func:`~napari_gr2r.engine.load_model` reads the package back losslessly.

``bioimageio.spec`` is an optional dependency (``pip install "napari-gr2r[bioimageio]"``),
imported only when a package is written. Nothing here uses the network.

Zoo runners pad the image border by the halo before running the network, by default
symmetrically, which is how :func:`~napari_gr2r.engine.denoise` mirrors the border
(:func:`~napari_gr2r.engine.inference.tiling.border_px` is the same halo), so the two agree to float
precision up to the border.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import GR2RError, InputError
from ..inference.memory import denoise_in_memory
from ..inference.tiling import border_px
from ..io.atomic import atomic_path, check_writable_file
from ..model import networks
from ..model.checkpoint import SUFFIX, save_model
from ..model.model import GR2RModel

INSTALL_HINT = 'pip install "napari-gr2r[bioimageio]"'
ATTACHMENT = "model" + SUFFIX
ARCHITECTURE_FILE = "gr2r_unet.py"
LICENSE = "CC-BY-4.0"
PAPER = ("Generative Recorrupted-to-Recorrupted: an unsupervised image denoising network for "
         "arbitrary noise distribution (ICLR 2023 submission).",
         "https://openreview.net/forum?id=vfa7--yvtYh")
SOFTWARE = ("napari-gr2r: self-supervised GR2R denoising of microscopy images in napari, "
            "Python and the command line.", "https://github.com/napari-gr2r/napari-gr2r")
TEST_SIDE_2D = 256
"""Largest side of the test image of a 2D package (pixels)."""
_NAME_CHARACTERS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+- ()")


def geometry(model: GR2RModel) -> tuple[int, int, int]:
    """``(halo, step, min_size)`` of the package's spatial axes, in pixels.

    >>> from napari_gr2r.engine.model.networks import UNet
    >>> class M: net = UNet(dims=2, channels=1, width=8, depth=2)
    >>> geometry(M())
    (24, 4, 52)
    """
    step = int(model.net.multiple)
    halo = border_px(model)
    return halo, step, 2 * halo + step


def _spec() -> Any:
    try:
        import bioimageio.spec as spec
        from bioimageio.spec.model import v0_5
    except ImportError:
        raise GR2RError(
            "Exporting to the BioImage Model Zoo needs bioimageio.spec, which is not "
            f"installed: {INSTALL_HINT}"
        ) from None
    return spec, v0_5


def export_bioimageio(model: GR2RModel, path: str | os.PathLike, name: str | None = None,
                      authors: list[str] | str | None = None, description: str | None = None,
                      cover: str | os.PathLike | None = None, test_input: Any = None) -> Path:
    """Write ``model`` as a BioImage Model Zoo package (a zip) and return its path.

    Parameters
    ----------
    model : GR2RModel
        A trained (or loaded) model.
    path : path
        Where to write the package; it must end in ``.zip``. Written atomically: an
        interrupted export leaves any earlier file untouched.
    name : str, optional
        Shown by the zoo's tools (letters, digits, spaces and ``_+-()``; 5 to 128 characters).
    authors : str or list of str, optional
        Names of the people who trained the model.
    description : str, optional
        One or two sentences; a default says what the model is.
    cover : path, optional
        A PNG or JPEG to show instead of the generated noisy | denoised picture.
    test_input : array, optional
        An image with the model's axes (like the training data) from which a crop becomes
        the package's test input; by default a synthetic image with the model's intensity
        range and noise level. Sides shorter than the package's minimum are mirrored.

    Raises
    ------
    GR2RError
        When bioimageio.spec is missing, the name or path cannot be used, or the model
        sees neighbouring planes (``context``), which a package cannot carry.
    """
    if not isinstance(model, GR2RModel):
        raise InputError(f"export_bioimageio needs a trained model, not {type(model).__name__}; "
                         "train one or read a model file with load_model().")
    if getattr(model.config, "context", 0):
        raise InputError(
            f"This model sees {model.config.context} neighbouring plane(s) on each side "
            "(context), which a BioImage Model Zoo package cannot carry; export a model "
            "trained with context 0.")
    path = Path(path)
    if path.suffix.lower() != ".zip":
        raise InputError(f"A BioImage Model Zoo package is a zip file: give a path ending in "
                         f".zip, not {path.name!r}.")
    name = _check_name(name or _default_name(model))
    authors = [authors] if isinstance(authors, str) else list(authors or [])
    authors = [a.strip() for a in authors if a and a.strip()] or ["napari-gr2r user"]
    description = (description or _default_description(model)).strip()
    if len(description) > 1024:
        raise InputError("The description is longer than 1024 characters; shorten it.")
    if cover is not None and Path(cover).suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise InputError(f"The cover must be a PNG or JPEG image, not {Path(cover).name!r}.")
    if cover is not None and not Path(cover).is_file():
        raise InputError(f"No cover image at {cover}.")
    check_writable_file(path)
    spec, v0_5 = _spec()

    with tempfile.TemporaryDirectory(prefix="gr2r-bioimageio-") as tmp:
        folder = Path(tmp)
        files = _write_files(model, folder, cover, test_input)
        readme = folder / "README.md"
        readme.write_text(_readme(model, name, description, files["test_input_array"]),
                          encoding="utf-8")
        # the files are checked and hashed, the citations' URLs not looked up (offline)
        with spec.ValidationContext(known_files={PAPER[1]: None, SOFTWARE[1]: None},
                                    log_warnings=False):
            descr = _description(v0_5, model, name, authors, description, files, readme)
        package = folder / "package.zip"
        with spec.ValidationContext(perform_io_checks=False, log_warnings=False):
            spec.save_bioimageio_package(descr, output_path=package)
        with atomic_path(path) as tmp_path:
            shutil.copyfile(package, tmp_path)
    return path


def _check_name(name: str) -> str:
    name = " ".join(str(name).split())
    bad = sorted(set(name) - _NAME_CHARACTERS)
    if bad or not 5 <= len(name) <= 128:
        raise InputError(
            f"The package name {name!r} cannot be used: give 5 to 128 letters, digits, spaces "
            "or _+-() characters" + (f" (not {''.join(bad)!r})." if bad else ".")
        )
    return name


def _default_name(model: GR2RModel) -> str:
    channels = f"{model.channels} channel" + ("s" if model.channels > 1 else "")
    return f"GR2R denoiser {model.dims}D {model.axes} {channels}"


def _default_description(model: GR2RModel) -> str:
    return (f"Self-supervised GR2R denoiser for {model.dims}D fluorescence microscopy images "
            f"(trained on {model.axes} data, {model.channels} channel(s), {model.step} steps) "
            "made with napari-gr2r.")


# --------------------------------------------------------------------------------------------
# the package's files


def _write_files(model: GR2RModel, folder: Path, cover: Any, test_input: Any) -> dict[str, Any]:
    net = networks.build_network(model.dims, model.channels, model.config.width,
                                 model.config.depth, model.config.residual,
                                 members=model.config.members)
    net.load_state_dict({k: v.detach().cpu().float() for k, v in model.net.state_dict().items()})
    net.eval()
    # a copy on the CPU: the caller's network stays where it is (it may be training meanwhile)
    model = dataclasses.replace(model, net=net)
    files: dict[str, Any] = {}
    files["weights"] = folder / "weights.pt"
    torch.save(net.state_dict(), files["weights"])
    files["architecture"] = folder / ARCHITECTURE_FILE
    shutil.copyfile(networks.__file__, files["architecture"])
    files["torchscript"] = folder / "weights_torchscript.pt"
    torch.jit.script(net).save(str(files["torchscript"]))
    files["attachment"] = save_model(model, folder / ATTACHMENT)

    test = _test_array(model, test_input)
    spatial = test.shape[2:]
    axes = "SCZYX" if model.dims == 3 else "SCYX"
    # the zoo's test runs the network on the test tensor as it is, once, without border padding
    out = denoise_in_memory(model, test, axes, tile=tuple(spatial), device="cpu", batch_size=1,
                            border=0, tta=1)
    files["test_input_array"] = test
    files["test_input"] = folder / "test_input.npy"
    files["test_output"] = folder / "test_output.npy"
    np.save(files["test_input"], test)
    np.save(files["test_output"], out.astype(np.float32))
    files["cover"] = folder / ("cover" + Path(cover).suffix.lower() if cover else "cover.png")
    if cover is not None:
        shutil.copyfile(cover, files["cover"])
    else:
        _write_cover(files["cover"], test, out)
    return files


def _test_array(model: GR2RModel, test_input: Any) -> np.ndarray:
    """The test input ``(1, C, [Z,] Y, X)``, float32, of valid sizes for the package."""
    _, step, min_size = geometry(model)
    if test_input is None:
        side = min_size if model.dims == 3 else _valid(TEST_SIDE_2D, min_size, step)
        return _synthetic(model, (side,) * model.dims)[None]
    source = model.open_source(test_input, None)
    _, nz, ny, nx = source.czyx
    lengths = (nz, ny, nx) if model.dims == 3 else (ny, nx)
    caps = (min_size,) * 3 if model.dims == 3 else (TEST_SIDE_2D,) * 2
    boxes = []
    for n, cap in zip(lengths, caps):
        size = _valid(min(n, cap), min_size, step) if n >= min_size else n
        start = (n - size) // 2
        boxes.append(slice(start, start + size))
    if model.dims == 3:
        block = source.read(0, *boxes)
    else:
        block = source.read(0, slice(nz // 2, nz // 2 + 1), *boxes)[:, 0]
    pad = [(0, 0)] + [(0, _valid(s, min_size, step, up=True) - s) for s in block.shape[1:]]
    if any(p[1] for p in pad):
        block = np.pad(block, pad, mode="symmetric")
    return np.ascontiguousarray(block[None], dtype=np.float32)


def _valid(size: int, min_size: int, step: int, up: bool = False) -> int:
    """The valid size ``min_size + n * step`` nearest ``size`` from below (or above)."""
    n = (size - min_size) / step
    return min_size + step * max(0, math.ceil(n) if up else math.floor(n))


def _synthetic(model: GR2RModel, shape: tuple[int, ...]) -> np.ndarray:
    """Smooth blobs with the model's noise, in the model's intensity units: ``(C, ...)``."""
    rng = np.random.default_rng(0)
    grids = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij")
    clean = np.full(shape, 0.1, np.float32)
    for _ in range(max(4, math.prod(shape) // 2000)):
        centre = [rng.uniform(0, n) for n in shape]
        radius = rng.uniform(3, max(4, min(shape) / 16))
        dist2 = sum((g - c) ** 2 for g, c in zip(grids, centre))
        blob = rng.uniform(0.4, 0.9) * np.exp(-dist2 / (2 * radius**2)).astype(np.float32)
        np.maximum(clean, blob, out=clean)
    noisy = []
    level = model.noise_level
    for c in range(model.channels):
        var = np.maximum(level.a[c] * clean + level.b[c], 0)
        noisy.append(clean + np.sqrt(var) * rng.standard_normal(shape).astype(np.float32))
    return model.normalization.invert(np.stack(noisy).astype(np.float32))


def _write_cover(path: Path, test: np.ndarray, out: np.ndarray) -> None:
    """Noisy | denoised, first channel (middle plane of a volume), scaled alike: 2:1 PNG."""
    import imageio.v3 as iio

    noisy, clean = test[0, 0], out[0, 0]
    if noisy.ndim == 3:
        noisy, clean = noisy[noisy.shape[0] // 2], clean[clean.shape[0] // 2]
    lo, hi = np.percentile(noisy, [0.5, 99.5])
    picture = np.concatenate([noisy, clean], axis=1)
    picture = np.clip((picture - lo) / max(hi - lo, 1e-12), 0, 1)
    repeat = max(1, 256 // noisy.shape[0])
    picture = np.kron(picture, np.ones((repeat, repeat), np.float32))
    iio.imwrite(path, (picture * 255).round().astype(np.uint8))


# --------------------------------------------------------------------------------------------
# rdf.yaml


def _description(v0_5: Any, model: GR2RModel, name: str, authors: list[str], description: str,
                 files: dict[str, Any], readme: Path) -> Any:
    from ..._version import __version__

    halo, step, min_size = geometry(model)
    space = ("z", "y", "x") if model.dims == 3 else ("y", "x")
    channel = v0_5.ChannelAxis(channel_names=[f"channel{c}" for c in range(model.channels)])
    in_id, out_id = v0_5.TensorId("noisy"), v0_5.TensorId("denoised")
    in_axes = [v0_5.BatchAxis(), channel] + [
        v0_5.SpaceInputAxis(id=v0_5.AxisId(a), size=v0_5.ParameterizedSize(min=min_size, step=step))
        for a in space]
    out_axes = [v0_5.BatchAxis(), channel] + [
        v0_5.SpaceOutputAxisWithHalo(
            id=v0_5.AxisId(a), halo=halo,
            size=v0_5.SizeReference(tensor_id=in_id, axis_id=v0_5.AxisId(a)))
        for a in space]
    low = [float(v) for v in model.normalization.low]
    scale = [float(h) - float(lo) for h, lo in zip(model.normalization.high, low)]
    pre = _scale_linear(v0_5, [1 / s for s in scale], [-lo / s for lo, s in zip(low, scale)])
    post = _scale_linear(v0_5, scale, low)
    data = v0_5.IntervalOrRatioDataDescr(type="float32")
    inputs = [v0_5.InputTensorDescr(
        id=in_id, axes=in_axes, data=data, preprocessing=[pre],
        test_tensor=v0_5.FileDescr(source=files["test_input"]),
        description="Noisy image, in the intensity units of the training data.")]
    outputs = [v0_5.OutputTensorDescr(
        id=out_id, axes=out_axes, data=data, postprocessing=[post],
        test_tensor=v0_5.FileDescr(source=files["test_output"]),
        description="Denoised image, in the same intensity units as the input.")]
    torch_version = v0_5.Version(torch.__version__.split("+")[0])
    kwargs = dict(dims=model.dims, channels=model.channels, width=model.config.width,
                  depth=model.config.depth, residual=bool(model.config.residual))
    if model.config.members > 1:
        kwargs["members"] = int(model.config.members)
    weights = v0_5.WeightsDescr(
        pytorch_state_dict=v0_5.PytorchStateDictWeightsDescr(
            source=files["weights"], pytorch_version=torch_version,
            architecture=v0_5.ArchitectureFromFileDescr(
                source=files["architecture"],
                callable=v0_5.Identifier("Ensemble" if model.config.members > 1 else "UNet"),
                kwargs=kwargs)),
        torchscript=v0_5.TorchscriptWeightsDescr(
            source=files["torchscript"], pytorch_version=torch_version,
            parent="pytorch_state_dict"),
    )
    config = {
        "napari_gr2r": {"model_file": ATTACHMENT, "version": str(__version__),
                        "axes": model.axes, "dims": model.dims, "channels": model.channels,
                        "method": model.config.method, "steps": model.step},
        "bioimageio": {
            "architecture_type": "U-Net" if model.config.members == 1 else
                                 f"mean of {model.config.members} U-Nets",
            "model_parameter_count": int(networks.count_parameters(model.net)),
            "training": {"training_batch_size": float(model.config.batch_size),
                         "initial_learning_rate": float(model.config.peak_lr),
                         "loss_function": f"GR2R ({model.config.method})",
                         "optimizer": "Adam"},
        },
    }
    return v0_5.ModelDescr(
        name=name, description=description,
        authors=[v0_5.Author(name=a) for a in authors],
        cite=[v0_5.CiteEntry(text=PAPER[0], url=v0_5.HttpUrl(PAPER[1])),
              v0_5.CiteEntry(text=SOFTWARE[0], url=v0_5.HttpUrl(SOFTWARE[1]))],
        license=v0_5.LicenseId(LICENSE),
        documentation=v0_5.FileDescr(source=readme),
        covers=[v0_5.FileDescr(source=files["cover"])],
        attachments=[v0_5.FileDescr(source=files["attachment"])],
        tags=["denoising", "self-supervised", "gr2r", "napari-gr2r", "pytorch", "unet",
              f"{model.dims}d", "fluorescence-light-microscopy"],
        inputs=inputs, outputs=outputs, weights=weights, config=config,
    )


def _scale_linear(v0_5: Any, gain: list[float], offset: list[float]) -> Any:
    if len(gain) == 1:
        kwargs = v0_5.ScaleLinearKwargs(gain=gain[0], offset=offset[0])
    else:
        kwargs = v0_5.ScaleLinearAlongAxisKwargs(axis=v0_5.AxisId("channel"), gain=gain,
                                                  offset=offset)
    return v0_5.ScaleLinearDescr(kwargs=kwargs)


def _readme(model: GR2RModel, name: str, description: str, test: np.ndarray) -> str:
    from .readme import readme

    return readme(model, name, description, test.shape, geometry(model), PAPER, SOFTWARE,
                  LICENSE, ATTACHMENT)
