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
        Sample name, a key of `SAMPLES` (``"nuclei2d"`` or ``"nuclei3d"``).

    Returns
    -------
    noisy : np.ndarray
        Simulated camera image, uint16, in ADU.
    clean : np.ndarray
        Expected value of `noisy` (``gain * photons + offset``), float32, on
        the same intensity scale, so PSNR between the two is meaningful.
    info : dict
        Copy of ``SAMPLES[name]``: file names, axes, scale (µm per axis),
        description and noise parameters.

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
    return images[0], images[1], {**info, "noise": dict(info["noise"])}
