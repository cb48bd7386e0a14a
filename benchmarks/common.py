"""Shared pieces of the benchmarks: test images, noise models, metrics, tables, optional imports."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import platform
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# --------------------------------------------------------------------------------------------
# test images: clean references scaled to [0, 1]

CROP = 128


def _unit(image: np.ndarray) -> np.ndarray:
    image = image.astype(np.float64)
    lo, hi = float(image.min()), float(image.max())
    return ((image - lo) / max(hi - lo, 1e-12)).astype(np.float32)


def _centre_crop(image: np.ndarray, size: int, offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    ny, nx = image.shape[-2:]
    size = min(size, ny, nx)
    y0 = min(max((ny - size) // 2 + offset[0], 0), ny - size)
    x0 = min(max((nx - size) // 2 + offset[1], 0), nx - size)
    return image[..., y0:y0 + size, x0:x0 + size]


def load_clean(name: str, crop: int = CROP) -> tuple[np.ndarray, str]:
    """A clean reference image in [0, 1] and its axes.

    ``nuclei2d`` is the bundled 2D sample's clean image; ``nuclei3d`` the bundled volume (its
    YX planes are cropped); ``camera`` is scikit-image's bundled photograph.
    """
    if name in ("nuclei2d", "nuclei3d"):
        from napari_gr2r.sample_data import load_sample

        _, clean, info = load_sample(name)
        return _unit(_centre_crop(clean, crop)), info["axes"]
    if name == "camera":
        from skimage import data

        # the photographer's head, camera and coat: edges, texture and flat sky
        return _unit(_centre_crop(data.camera(), crop, offset=(-60, -60))), "YX"
    raise ValueError(f"unknown benchmark image {name!r}; use nuclei2d, nuclei3d or camera")


# --------------------------------------------------------------------------------------------
# noise models, on the scale each is defined on


@dataclass(frozen=True)
class Noise:
    """A noise model applied to a clean image in [0, 1].

    ``scale`` maps [0, 1] to the image's intensity units (``data_range`` for PSNR and SSIM);
    ``sigma`` is the Gaussian (read) standard deviation and ``gain`` the Poisson gain in those
    units; ``kernel`` the blur that correlates the Gaussian part (None: white).
    """

    name: str
    scale: float
    sigma: float
    gain: float = 0.0
    kernel: np.ndarray | None = None

    @property
    def label(self) -> str:
        return {"gaussian": "Gaussian σ=25", "poisson-gaussian": "Poisson-Gaussian peak 20",
                "correlated": "correlated Gaussian σ=25"}.get(self.name, self.name)

    def apply(self, clean01: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """``(noisy, clean)`` float32 on this model's intensity scale, with a fixed seed."""
        rng = np.random.default_rng(seed)
        clean = (clean01 * self.scale).astype(np.float64)
        if self.gain > 0:
            signal = rng.poisson(clean / self.gain) * self.gain
        else:
            signal = clean
        white = rng.standard_normal(clean.shape)
        if self.kernel is not None:
            white = correlate_periodic(white, self.kernel)
        noisy = signal + self.sigma * white
        return noisy.astype(np.float32), clean.astype(np.float32)


def gaussian_kernel(sd: float = 1.0, radius: int = 2) -> np.ndarray:
    """A 2D Gaussian kernel normalised to unit L2 norm, so white noise keeps its variance."""
    r = np.arange(-radius, radius + 1)
    k = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sd**2))
    return k / np.sqrt(np.sum(k**2))


def correlate_periodic(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve the last two axes with ``kernel`` with periodic boundaries (via the FFT)."""
    ny, nx = image.shape[-2:]
    pad = np.zeros((ny, nx))
    ky, kx = kernel.shape
    pad[:ky, :kx] = kernel
    pad = np.roll(pad, (-(ky // 2), -(kx // 2)), axis=(0, 1))
    return np.real(np.fft.ifft2(np.fft.fft2(image, axes=(-2, -1)) * np.fft.fft2(pad),
                                axes=(-2, -1)))


NOISES: dict[str, Noise] = {
    "gaussian": Noise("gaussian", scale=255.0, sigma=25.0),
    # peak 20 photons, gain 1 (ADU = photons), read noise 2 photons
    "poisson-gaussian": Noise("poisson-gaussian", scale=20.0, sigma=2.0, gain=1.0),
    "correlated": Noise("correlated", scale=255.0, sigma=25.0, kernel=gaussian_kernel(1.0, 2)),
}


# --------------------------------------------------------------------------------------------
# metrics


def psnr(clean: np.ndarray, estimate: np.ndarray, data_range: float) -> float:
    mse = float(np.mean((clean.astype(np.float64) - estimate.astype(np.float64)) ** 2))
    return float(10 * np.log10(data_range**2 / max(mse, 1e-20)))


def ssim(clean: np.ndarray, estimate: np.ndarray, data_range: float) -> float:
    """Mean SSIM (scikit-image), over the YX planes of a volume."""
    from skimage.metrics import structural_similarity

    clean = clean.astype(np.float64).reshape(-1, *clean.shape[-2:])
    estimate = estimate.astype(np.float64).reshape(-1, *estimate.shape[-2:])
    return float(np.mean([structural_similarity(c, e, data_range=data_range)
                          for c, e in zip(clean, estimate)]))


# --------------------------------------------------------------------------------------------
# optional packages


def optional(module: str) -> Any | None:
    """The module, or None when it is not installed (or fails to import)."""
    try:
        return importlib.import_module(module)
    except Exception:
        return None


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    from importlib.metadata import PackageNotFoundError, version

    for name in ("torch", "numpy", "careamics", "bm3d", "scikit-image", "lightning"):
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    return out


def load() -> dict[str, Any]:
    """The machine's load averages and ``uptime`` line, to state beside shared-machine timings."""
    import os
    import subprocess

    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    return {"loadavg": [round(x, 2) for x in os.getloadavg()], "uptime": uptime}


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"cpu": platform.processor() or platform.machine(),
                            "cores": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    with contextlib.suppress(OSError):
        info["load_avg_1min"] = round(os.getloadavg()[0], 2)
    import torch

    info["torch_threads"] = torch.get_num_threads()
    return info


# --------------------------------------------------------------------------------------------
# results on disk


class Store:
    """One JSON (and optionally one npz) per finished run, so an interrupted suite resumes."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str, ext: str) -> Path:
        return self.folder / f"{key.replace('/', '_')}.{ext}"

    def get(self, key: str) -> dict[str, Any] | None:
        path = self._path(key, "json")
        if path.exists():
            return json.loads(path.read_text())
        return None

    def put(self, key: str, record: dict[str, Any], image: np.ndarray | None = None) -> None:
        if image is not None:
            np.savez_compressed(self._path(key, "npz"), image=image.astype(np.float32))
        tmp = self._path(key, "json.tmp")
        tmp.write_text(json.dumps(record, indent=1))
        tmp.replace(self._path(key, "json"))

    def image(self, key: str) -> np.ndarray | None:
        path = self._path(key, "npz")
        if path.exists():
            with np.load(path) as f:
                return f["image"]
        return None


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.2f}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self.start

    @property
    def elapsed(self) -> float:
        """Seconds since the start (inside the block)."""
        return time.perf_counter() - self.start


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def log_row(row: dict, path: Any = None, shown: dict | None = None) -> None:
    """Print a run's row as JSON (``shown`` instead where given) and append it as one line of
    JSON to ``path`` (a :class:`~pathlib.Path`; None: print only)."""
    log(json.dumps(row if shown is None else shown))
    if path is not None:
        with path.open("a") as f:
            f.write(json.dumps(row) + "\n")
