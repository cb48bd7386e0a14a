"""Regenerate the bundled real-noise sample from the FMD dataset's BPAE test images.

Usage::

    python make_fmd_sample.py /path/to/fmd-bpae [--out DIR]

``/path/to/fmd-bpae`` holds ``raw/Confocal_BPAE_G_2.png`` (one real 8-bit confocal capture
of F-actin in BPAE cells) and ``gt/Confocal_BPAE_G_2.png`` (the average of 50 captures) from
the Fluorescence Microscopy Denoising dataset (Zhang et al., CVPR 2019, MIT licence). The
script writes the 256 x 256 crop ``[128:384, 128:384]`` of both, unchanged (uint8), as
``fmd_confocal_{noisy,clean}.tif``. Needs numpy, tifffile and imageio.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import tifffile

NAME = "Confocal_BPAE_G_2.png"
CROP = (slice(128, 384), slice(128, 384))
SCALE = (0.2, 0.2)  # a plausible pixel size for the demo, not a calibration


def save(path: Path, data: np.ndarray, axes: str, scale: tuple) -> None:
    """Write a TIFF with its axes, YX resolution and pixel size in µm (as ``make_samples.py``)."""
    pixels_per_cm = 1e4 / scale[-1]
    tifffile.imwrite(path, data, photometric="minisblack",
                     resolution=(pixels_per_cm, pixels_per_cm), resolutionunit="CENTIMETER",
                     metadata={"axes": axes, "scale": list(scale), "unit": "um"})


def main(data_dir: Path, out_dir: Path) -> None:
    for sub, which in (("raw", "noisy"), ("gt", "clean")):
        image = iio.imread(data_dir / sub / NAME)[CROP]
        save(out_dir / f"fmd_confocal_{which}.tif", image, "YX", SCALE)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    main(args.data_dir, args.out)
