"""The napari-gr2r engine: GR2R training and tiled denoising in pure PyTorch.

Importable without napari or Qt.

>>> from napari_gr2r import engine
>>> cfg = engine.TrainConfig("fast", seed=0)                      # doctest: +SKIP
>>> model = engine.train(noisy, axes="ZYX", config=cfg)            # doctest: +SKIP
>>> out = engine.denoise(model, noisy, axes="ZYX")                 # doctest: +SKIP
>>> engine.save_model(model, "nuclei.gr2r.pt")                     # doctest: +SKIP
"""

from .api import denoise, train
from .batch.events import (
    FileDone,
    FileFailed,
    FileProgress,
    FilesEvent,
    FilesFinished,
    FileSkipped,
    FileStarted,
)
from .batch.names import expand_inputs, output_path
from .batch.run import denoise_files
from .config import METHODS, PRESETS, TrainConfig
from .devices import available_devices, resolve_device
from .errors import (
    AxesError,
    CheckpointError,
    ConfigError,
    DeviceMemoryError,
    GR2RError,
    InputError,
    NumericalError,
    OutputError,
)
from .export.bioimageio import export_bioimageio
from .inference.outofcore import ChunkProgress, denoise_lazy, denoise_to_zarr, iter_denoise_to_zarr, open_lazy
from .io.axes import AxesInfo, guess_axes, parse_axes
from .io.formats import read_image, write_image
from .io.omezarr import open_result
from .model.checkpoint import load_model, save_model
from .model.model import GR2RModel
from .noise.calibration import NoiseCalibration, calibrate_noise
from .quality.estimate import FittedNoise, QualityReport, assess, fit_noise
from .training.events import (
    CheckpointSaved,
    CollapseDetected,
    TrainEvent,
    TrainingFinished,
    TrainingProgress,
    TrainingStarted,
)
from .training.guard import DivergenceWarning
from .training.trainer import CollapseWarning, Trainer

__all__ = [
    "METHODS",
    "PRESETS",
    "AxesError",
    "AxesInfo",
    "CheckpointError",
    "CheckpointSaved",
    "ChunkProgress",
    "CollapseDetected",
    "CollapseWarning",
    "ConfigError",
    "DeviceMemoryError",
    "DivergenceWarning",
    "FileDone",
    "FileFailed",
    "FileProgress",
    "FileSkipped",
    "FileStarted",
    "FilesEvent",
    "FilesFinished",
    "FittedNoise",
    "GR2RError",
    "GR2RModel",
    "InputError",
    "NoiseCalibration",
    "NumericalError",
    "OutputError",
    "QualityReport",
    "TrainConfig",
    "TrainEvent",
    "Trainer",
    "TrainingFinished",
    "TrainingProgress",
    "TrainingStarted",
    "assess",
    "available_devices",
    "calibrate_noise",
    "denoise",
    "denoise_files",
    "denoise_lazy",
    "denoise_to_zarr",
    "expand_inputs",
    "export_bioimageio",
    "fit_noise",
    "guess_axes",
    "iter_denoise_to_zarr",
    "load_model",
    "open_lazy",
    "open_result",
    "output_path",
    "parse_axes",
    "read_image",
    "resolve_device",
    "save_model",
    "train",
    "write_image",
]
