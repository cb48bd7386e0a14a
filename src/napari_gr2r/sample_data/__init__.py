"""Small bundled noisy/clean image pairs for demos and tests.

See ``README.md`` in this folder for provenance, licences and how the files
were made (``make_samples.py``).

Examples
--------
>>> from napari_gr2r.sample_data import load_sample
>>> noisy, clean, info = load_sample("nuclei2d")
>>> noisy.shape, info["axes"]
((256, 256), 'YX')
"""

from __future__ import annotations

from importlib.resources import as_file, files
from typing import TYPE_CHECKING

import numpy as np
import tifffile

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = ["SAMPLES", "load_sample", "sample_path"]

_NOISE = {
    "kind": "poisson-gaussian",
    "gain": 1.0,
    "offset": 100.0,
    "read_sigma": 2.0,
    "peak_photons": 30,
}

SAMPLES: dict[str, dict] = {
    "nuclei2d": {
        "noisy": "nuclei2d_noisy.tif",
        "clean": "nuclei2d_clean.tif",
        "axes": "YX",
        "scale": (0.2, 0.2),
        "description": (
            "Fluorescence nuclei, 256x256 crop of a real image from the 2018 "
            "Data Science Bowl (BBBC038, CC0) with simulated low-light "
            "Poisson-Gaussian noise"
        ),
        "noise": dict(_NOISE),
        "reference_noise": "its own: a real micrograph",
    },
    "nuclei3d": {
        "noisy": "nuclei3d_noisy.tif",
        "clean": "nuclei3d_clean.tif",
        "axes": "ZYX",
        "scale": (1.0, 0.5, 0.5),
        "description": (
            "Synthetic 3D nuclei, 31x61x57, rendered from stardist's synthetic "
            "label mask with simulated low-light Poisson-Gaussian noise"
        ),
        "noise": dict(_NOISE),
    },
    "fmd_confocal": {
        "noisy": "fmd_confocal_noisy.tif",
        "clean": "fmd_confocal_clean.tif",
        "axes": "YX",
        "scale": (0.2, 0.2),
        "description": (
            "Real confocal noise: F-actin in BPAE cells, a 256x256 crop of one 8-bit capture "
            "from the FMD dataset (Zhang et al. 2019, MIT) with the average of 50 captures "
            "as the clean reference"
        ),
        "noise": {"kind": "real", "microscope": "confocal", "frames_averaged_in_clean": 50},
        "reference_noise": "1/50 of a capture's: an average of 50 captures",
        "data_range": 255.0,
    },
}


def _info(name: str) -> dict:
    try:
        return SAMPLES[name]
    except KeyError:
        valid = ", ".join(repr(n) for n in SAMPLES)
        raise ValueError(f"unknown sample {name!r}; valid names: {valid}") from None


def sample_path(name: str, which: str = "noisy") -> Traversable:
    """Return the location of a bundled sample file.

    Parameters
    ----------
    name : str
        Sample name, a key of `SAMPLES`.
    which : {"noisy", "clean"}
        Which image of the pair.

    Returns
    -------
    importlib.resources.abc.Traversable
        Path-like resource; a `pathlib.Path` for an ordinary installation.
        Use `importlib.resources.as_file` to get a real file in every case.

    Raises
    ------
    ValueError
        If `name` or `which` is unknown.
    """
    info = _info(name)
    if which not in ("noisy", "clean"):
        raise ValueError(f"which must be 'noisy' or 'clean', not {which!r}")
    return files(__package__) / info[which]


def load_sample(name: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """Load a bundled noisy/clean image pair.

    Parameters
    ----------
    name : str
        Sample name, a key of `SAMPLES` (``"nuclei2d"``, ``"nuclei3d"`` or
        ``"fmd_confocal"``).

    Returns
    -------
    noisy : np.ndarray
        The noisy image: simulated camera image (uint16, ADU) for the nuclei
        samples, a real 8-bit capture for ``"fmd_confocal"``.
    clean : np.ndarray
        The reference on the same intensity scale, float32: the expected value
        of `noisy` (``gain * photons + offset``) for the nuclei samples, the
        average of 50 captures for ``"fmd_confocal"``.
    info : dict
        Copy of ``SAMPLES[name]``: file names, axes, scale (µm per axis),
        description, noise parameters and, where the PSNR convention fixes it,
        ``data_range`` (the peak used for PSNR).

    Raises
    ------
    ValueError
        If `name` is unknown.
    """
    info = _info(name)
    images = []
    for which in ("noisy", "clean"):
        with as_file(sample_path(name, which)) as path:
            images.append(tifffile.imread(path))
    return images[0], images[1].astype(np.float32, copy=False), {**info,
                                                                 "noise": dict(info["noise"])}
