"""Choosing where the network runs: CUDA, then Apple MPS, then the CPU."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from .errors import ConfigError, DeviceMemoryError


def available_devices() -> list[tuple[str, str]]:
    """``(device, label)`` pairs for what this machine has, the CPU last.

    >>> available_devices()[-1]
    ('cpu', 'CPU')
    """
    found = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            found.append((f"cuda:{i}", f"CUDA {i}: {torch.cuda.get_device_name(i)}"))
    if _mps_available():
        found.append(("mps", "Apple MPS"))
    found.append(("cpu", "CPU"))
    return found


def worker_threads() -> int:
    """Torch intra-op threads for a background worker: one core fewer than the process may use."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) - 1)


@contextlib.contextmanager
def capped_threads() -> Iterator[int]:
    """Run the block with at most :func:`worker_threads` torch threads in this thread.

    Torch keeps its intra-op thread count per thread, so a GUI's main thread keeps its own and
    keeps a core for its event loop; the previous count is restored at the end, because thread
    pools reuse their threads.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(min(before, worker_threads()))
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


DEVICE_NAMES = "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (or None) picks CUDA, then MPS, then CPU; other names are checked.

    Raises :class:`~napari_gr2r.engine.errors.ConfigError` for a name that is not a device,
    or a device this machine does not have.
    """
    if device is None or str(device) == "auto":
        return torch.device(available_devices()[0][0])
    if not isinstance(device, (str, torch.device)):
        raise ConfigError(f"device must be one of {DEVICE_NAMES}, not {device!r}.")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"Unknown device {str(device)!r}; use {DEVICE_NAMES}.") from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"napari-gr2r does not run on {dev.type!r}; use {DEVICE_NAMES}.")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{str(device)!r} was asked for but this PyTorch sees no CUDA GPU; "
                              "use 'auto' or 'cpu'.")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"{str(device)!r} was asked for but this machine has "
                              f"{torch.cuda.device_count()} CUDA GPU(s), numbered from 0.")
    if dev.type == "mps" and not _mps_available():
        raise ConfigError("MPS was asked for but is not available here; use 'auto' or 'cpu'.")
    return dev


def usable_device(net: nn.Module, device: torch.device, dims: int, channels: int) -> torch.device:
    """``device`` if the network runs a forward and backward pass there, else the CPU.

    Apple's MPS backend lacks some operations (3D pooling among them in older PyTorch);
    instead of failing in the middle of training, fall back to the CPU with a warning.
    """
    if device.type != "mps":
        return device
    probe = torch.zeros((1, channels) + (8,) * dims, device=device, requires_grad=False)
    try:
        net.to(device)
        net(probe).sum().backward()
        net.zero_grad(set_to_none=True)
        return device
    except (NotImplementedError, RuntimeError) as exc:
        warnings.warn(
            f"The {dims}D network does not run on Apple MPS ({exc}); using the CPU instead.",
            RuntimeWarning,
            stacklevel=2,
        )
        net.to("cpu")
        return torch.device("cpu")


_AUTOCAST_TYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _cuda_bf16(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"fp32"``, ``"bf16"`` or ``"fp16"`` for ``TrainConfig.precision`` on ``device``.

    ``"auto"`` is bf16 on a CUDA GPU that supports it and fp32 elsewhere. fp16 needs a CUDA
    GPU (on a CPU its autocast is slow and its gradients need a scaler that only CUDA has);
    bf16 runs on a CPU or a GPU that supports it. Anything else raises
    :class:`~napari_gr2r.engine.errors.ConfigError` saying what to use instead.
    """
    if precision == "auto":
        return "bf16" if _cuda_bf16(device) else "fp32"
    if precision == "fp32":
        return precision
    if device.type == "mps":
        raise ConfigError(f"precision={precision!r} is not supported on Apple MPS; use 'fp32'.")
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("precision='fp16' needs a CUDA GPU and this run is on the CPU; use "
                          "'bf16' or 'fp32' (or 'auto').")
    if precision == "bf16" and device.type == "cuda" and not _cuda_bf16(device):
        raise ConfigError("This GPU does not support bf16; use precision='fp16' or 'fp32'.")
    if precision not in _AUTOCAST_TYPES:
        raise ConfigError(f"Unknown precision {precision!r}; use 'auto', 'fp32', 'bf16' or "
                          "'fp16'.")
    return precision


def autocast(device: torch.device, precision: str) -> Any:
    """The context the network's passes run in at ``precision`` (resolved): autocast to bf16
    or fp16, nothing for fp32."""
    dtype = _AUTOCAST_TYPES.get(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


# --------------------------------------------------------------------------------------------
# forward passes that fit the device's memory


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is a device running out of memory (CUDA's own error type; MPS and
    other back ends say so in words)."""
    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def release_cache(device: torch.device) -> None:
    """Give the memory the device's allocator keeps cached back, before a smaller try."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()


_DEVICE_WORDS = {"cuda": "GPU", "mps": "Apple GPU (MPS)"}


class DeviceBatches:
    """Forward passes of batches of tiles that fit the device: a batch the device has no memory
    for is run in halves, and later batches are cut to the size that fit, down to one tile.

    Tiles are independent in a network in evaluation mode, so the result is the same as one
    pass; a GPU shared with other jobs (a cluster's) slows the run instead of ending it.
    """

    def __init__(self) -> None:
        self.limit: int | None = None

    def __call__(self, forward: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor,
                 ) -> torch.Tensor:
        n, start, parts = int(batch.shape[0]), 0, []
        while start < n:  # the size that fits may shrink on the way
            size = n if self.limit is None else self.limit
            parts.append(self._fit(forward, batch[start:start + size]))
            start += size
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _fit(self, forward: Callable[[torch.Tensor], torch.Tensor], part: torch.Tensor,
             ) -> torch.Tensor:
        try:
            return forward(part)
        except RuntimeError as exc:
            if not out_of_memory(exc):
                raise
        # outside the handler: the failed pass's tensors went with its traceback
        release_cache(part.device)
        if part.shape[0] == 1:
            tile = "×".join(str(int(n)) for n in part.shape[2:])
            raise DeviceMemoryError(
                f"The {_DEVICE_WORDS.get(part.device.type, part.device.type)} ran out of memory "
                f"denoising one tile of {tile} "
                "pixels; give a smaller tile (--tile 128 on the command line, tile=128 in "
                "Python) or another device (--device cpu)."
            )
        self.limit = int(part.shape[0]) // 2
        return self(forward, part)
