"""Regenerate the bundled sample images from stardist's example data.

Usage::

    python make_samples.py /path/to/site-packages/stardist/data [--out DIR]

The stardist wheel (BSD-3-Clause) ships ``data/images/img2d.tif`` (a real
fluorescence nuclei image from the 2018 Data Science Bowl, BBBC038, CC0) and
``data/images/mask3d.tif`` (labels of synthetic 3D nuclei).  From these the
script writes ``nuclei2d_{noisy,clean}.tif`` and ``nuclei3d_{noisy,clean}.tif``.
All random draws use fixed seeds, so the output is reproducible.  Needs numpy,
tifffile and scipy.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import tifffile

PEAK_PHOTONS = 30.0  # 99.9th percentile of the clean image, in photons
READ_SIGMA = 2.0  # Gaussian read noise, in photons
OFFSET = 100.0  # camera offset, in ADU
GAIN = 1.0  # camera gain, in ADU per photon
CROP_2D = (slice(256, 512), slice(128, 384))  # 33 nuclei, no saturated ones
SEED_2D = 2018
SEED_3D = 3


def add_noise(clean: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Simulate a low-light Poisson-Gaussian camera image.

    Parameters
    ----------
    clean : np.ndarray
        Noise-free image in arbitrary, non-negative units.
    rng : np.random.Generator
        Source of the random draws.

    Returns
    -------
    noisy : np.ndarray
        ``GAIN * (Poisson(photons) + N(0, READ_SIGMA**2)) + OFFSET``, rounded
        and clipped to uint16.
    reference : np.ndarray
        The expected value of ``noisy``, ``GAIN * photons + OFFSET``, float32.
    """
    photons = clean.astype(np.float64) * (PEAK_PHOTONS / np.percentile(clean, 99.9))
    counts = rng.poisson(photons) + rng.normal(0.0, READ_SIGMA, photons.shape)
    noisy = np.clip(np.rint(GAIN * counts + OFFSET), 0, 65535).astype(np.uint16)
    reference = (GAIN * photons + OFFSET).astype(np.float32)
    return noisy, reference


def phantom_3d(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Render a smooth, blurred fluorescence image from a 3D label mask.

    Parameters
    ----------
    labels : np.ndarray
        Integer label image (ZYX), 0 is background.
    rng : np.random.Generator
        Source of the per-nucleus brightness and the texture.

    Returns
    -------
    np.ndarray
        Float64 image: nuclei of brightness 0.5-1.0 with a +-15 % smooth
        texture on a background of 0.08, blurred by an anisotropic Gaussian
        PSF (sigma 1.0 voxel in Z, 0.7 voxel in Y and X).
    """
    from scipy import ndimage as ndi  # only needed here; keeps the module importable

    brightness = rng.uniform(0.5, 1.0, int(labels.max()) + 1)
    brightness[0] = 0.0
    texture = ndi.gaussian_filter(rng.standard_normal(labels.shape), (1.0, 2.0, 2.0))
    texture /= texture.std()
    image = brightness[labels] * (1.0 + 0.15 * texture) + 0.08
    return ndi.gaussian_filter(image, (1.0, 0.7, 0.7), mode="reflect")


def save(path: Path, data: np.ndarray, axes: str, scale: tuple) -> None:
    """Write a TIFF with axes, YX resolution and the voxel size in µm.

    Parameters
    ----------
    path : Path
        Output file.
    data : np.ndarray
        Image to write.
    axes : str
        Axis order, ``"YX"`` or ``"ZYX"``.
    scale : tuple
        Pixel or voxel size in µm per axis.
    """
    pixels_per_cm = 1e4 / scale[-1]
    tifffile.imwrite(
        path,
        data,
        photometric="minisblack",
        resolution=(pixels_per_cm, pixels_per_cm),
        resolutionunit="CENTIMETER",
        metadata={"axes": axes, "scale": list(scale), "unit": "um"},
    )


def main(data_dir: Path, out_dir: Path) -> None:
    """Write the four sample files.

    Parameters
    ----------
    data_dir : Path
        The ``stardist/data`` folder (or its ``images`` subfolder).
    out_dir : Path
        Folder that receives the TIFF files.
    """
    images = data_dir / "images" if (data_dir / "images").is_dir() else data_dir
    out_dir.mkdir(parents=True, exist_ok=True)

    crop = tifffile.imread(images / "img2d.tif")[CROP_2D]
    noisy, clean = add_noise(crop, np.random.default_rng(SEED_2D))
    save(out_dir / "nuclei2d_noisy.tif", noisy, "YX", (0.2, 0.2))
    save(out_dir / "nuclei2d_clean.tif", clean, "YX", (0.2, 0.2))

    rng = np.random.default_rng(SEED_3D)
    labels = tifffile.imread(images / "mask3d.tif")
    noisy, clean = add_noise(phantom_3d(labels, rng), rng)
    save(out_dir / "nuclei3d_noisy.tif", noisy, "ZYX", (1.0, 0.5, 0.5))
    save(out_dir / "nuclei3d_clean.tif", clean, "ZYX", (1.0, 0.5, 0.5))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path, help="the stardist/data folder")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent, help="output folder")
    args = parser.parse_args()
    main(args.data_dir, args.out)
