"""npe2 sample data (File > Open Sample > napari-gr2r): each noisy image with its clean reference."""

from __future__ import annotations

from typing import Any

from napari_gr2r.sample_data import load_sample

_AXIS_NAMES = {"T": "t", "S": "s", "C": "c", "Z": "z", "Y": "y", "X": "x"}


def sample_layers(name: str) -> list[tuple[Any, dict[str, Any], str]]:
    """Layer data tuples for a bundled sample: the noisy image, then its clean reference."""
    noisy, clean, info = load_sample(name)
    axes = info["axes"]
    common = {
        "scale": tuple(float(s) for s in info["scale"]),
        "axis_labels": tuple(_AXIS_NAMES[a] for a in axes),
        "units": ("µm",) * len(axes),
        "metadata": {"sample": name, "description": info["description"], "noise": info["noise"]},
    }
    low, high = float(clean.min()), float(clean.max())
    return [
        (clean, {**common, "name": f"{name} clean", "visible": False,
                 "contrast_limits": (low, high)}, "image"),
        (noisy, {**common, "name": f"{name} noisy", "contrast_limits": (low, high)}, "image"),
    ]


def nuclei2d() -> list[tuple[Any, dict[str, Any], str]]:
    """2D fluorescence nuclei (256 x 256) with low-light noise, and the clean reference."""
    return sample_layers("nuclei2d")


def nuclei3d() -> list[tuple[Any, dict[str, Any], str]]:
    """3D synthetic nuclei (31 x 61 x 57) with low-light noise, and the clean reference."""
    return sample_layers("nuclei3d")


def fmd_confocal() -> list[tuple[Any, dict[str, Any], str]]:
    """Real confocal noise (FMD, 256 x 256, 8-bit) and the average of 50 captures."""
    return sample_layers("fmd_confocal")
