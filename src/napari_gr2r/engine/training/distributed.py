"""Training one model on several processes: PyTorch's process group and DistributedDataParallel.

Started by ``torchrun`` (one process per GPU, or per CPU socket), every process trains the same
network on its own patches and ``DistributedDataParallel`` averages the gradients, so each step
sees ``world size x batch_size`` patches. The parts of a run that must happen once happen on
rank 0 and are shared: the normalisation and noise fit (broadcast before the network is built),
validation and the choice of the best weights (broadcast at the end, so every rank ends with the
same model), checkpoints and the output file. A stop asked on any rank (Ctrl-C, SIGTERM from a
scheduler, :meth:`~.trainer.Trainer.request_stop`) is agreed on by all of them before each step,
so every rank stops after the same step.

The process group is found, not configured: a script started by ``torchrun`` has ``RANK`` and
``WORLD_SIZE`` in its environment, and the group is joined with ``gloo`` on CPUs and ``nccl``
on CUDA GPUs (or the group the script already initialised is used).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, ProcessLostError

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")

TIMEOUT_VARIABLE = "NAPARI_GR2R_DIST_TIMEOUT"
"""Seconds a process waits for the others at a collective before it gives up (and saves)."""

DEFAULT_TIMEOUT_S = 600.0
"""Long enough for rank 0's noise fit, validation and checkpoint writes while the others wait;
short enough that a process that stopped answering does not hold the run for PyTorch's
default half an hour."""

_LOST_MARKERS = ("connection closed", "connection reset", "broken pipe", "timed out",
                 "timeout", "gloo", "nccl", "socket", "peer")
"""Words of the errors a collective raises when another process is gone (the gloo and nccl
backends raise plain RuntimeErrors, not always :class:`torch.distributed.DistError`)."""


def _dist() -> Any:
    import torch.distributed as dist

    return dist


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (a world of one: no process group)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str = ""
    joined_here: bool = False
    """True when this module initialised the process group (and :meth:`leave` ends it)."""
    _state: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)

    @property
    def active(self) -> bool:
        """Whether there are other processes to share the work and the results with."""
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """Each rank's own GPU on a node (``cuda:LOCAL_RANK``); other devices as they are."""
        if device.type == "cuda" and self.active and device.index is None:
            device = torch.device("cuda", self.local_rank % max(torch.cuda.device_count(), 1))
            torch.cuda.set_device(device)
        return device

    # ------------------------------------------------------------------------- collectives
    @property
    def broken(self) -> bool:
        """Whether a run in this world failed on this process, or lost another process: the
        processes no longer meet at the same collectives, and :meth:`leave` must not wait."""
        return self._state.get("broken", False)

    def mark_broken(self) -> None:
        self._state["broken"] = True

    @contextmanager
    def collective(self, what: str = "training") -> Iterator[None]:
        """Turn the error of a collective whose peers are gone (a process killed, out of
        memory, failed, or silent past the timeout) into a one-line :class:`ProcessLostError`."""
        try:
            yield
        except Exception as exc:
            if not self.active or isinstance(exc, ProcessLostError) or not peer_lost(exc):
                raise
            self.mark_broken()
            raise ProcessLostError(
                f"Another of the {self.size} training processes ended or stopped answering "
                f"during {what} (killed, out of memory, or an error of its own: see its "
                "message)."
            ) from exc

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (plain picklable data)."""
        if not self.active:
            return obj
        box = [obj]
        with self.collective("the preparation"):
            _dist().broadcast_object_list(box, src=0)
        return box[0]

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when ``flag`` is True on any rank."""
        if not self.active:
            return flag
        where = device if self.backend == "nccl" else torch.device("cpu")
        value = torch.tensor([1.0 if flag else 0.0], device=where)
        with self.collective():
            _dist().all_reduce(value, op=_dist().ReduceOp.MAX)
        return bool(value.item() > 0)

    def share_weights(self, net: nn.Module) -> None:
        """Rank 0's weights (parameters and buffers) into ``net`` on every rank."""
        if not self.active:
            return
        with torch.no_grad(), self.collective("the sharing of the best weights"):
            for tensor in net.state_dict().values():
                _dist().broadcast(tensor, src=0)

    def leave(self) -> None:
        """End the process group if this module started it (at the end of a CLI run), once
        every rank is there: no rank exits while rank 0 still writes the model file. After a
        failure (:attr:`broken`) nobody waits: a process that failed alone ends at once, and
        the others learn of it from their next collective instead of waiting at a barrier
        the failed one would meet at another point of the run."""
        dist = _dist()
        if not (self.joined_here and dist.is_initialized()):
            return
        try:
            if not self.broken:
                with self.collective("the end of the run"):
                    dist.barrier()
        finally:
            dist.destroy_process_group()


SINGLE = World()


def peer_lost(exc: BaseException) -> bool:
    """Whether ``exc``, raised by a collective, says that another process is gone."""
    if isinstance(exc, _dist().DistError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(word in text for word in _LOST_MARKERS)


def timeout() -> timedelta:
    """How long a collective waits for the other processes: ``NAPARI_GR2R_DIST_TIMEOUT``
    seconds, else :data:`DEFAULT_TIMEOUT_S`."""
    text = os.environ.get(TIMEOUT_VARIABLE, "").strip()
    try:
        seconds = float(text) if text else DEFAULT_TIMEOUT_S
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ConfigError(f"{TIMEOUT_VARIABLE}={text!r}: give the seconds a process waits for "
                          "the others, a number above 0 (default: "
                          f"{DEFAULT_TIMEOUT_S:g}).")
    return timedelta(seconds=seconds)


def launched_by_torchrun() -> bool:
    return all(name in os.environ for name in ("RANK", "WORLD_SIZE"))


def join(distributed: bool | None, device: torch.device) -> World:
    """The process group this run trains in.

    ``distributed=None`` (default) joins the group of a process started by ``torchrun`` (or
    one already initialised) and trains alone otherwise; ``True`` requires one; ``False``
    trains alone whatever the environment says.
    """
    if distributed is False:
        return SINGLE
    dist = _dist()
    available = dist.is_available()
    if available and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(),
                     int(os.environ.get("LOCAL_RANK", 0)), str(dist.get_backend()))
    if not launched_by_torchrun():
        if distributed:
            raise ConfigError(
                "distributed=True trains in a process group, and this process is not in one: "
                "start it with torchrun (torchrun --nproc-per-node N -m napari_gr2r train ...), "
                "or leave distributed unset."
            )
        return SINGLE
    if int(os.environ["WORLD_SIZE"]) <= 1 and not distributed:
        return SINGLE
    if not available:
        raise ConfigError("This PyTorch was built without torch.distributed; train in one "
                          "process (without torchrun).")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
    dist.init_process_group(backend, timeout=timeout())
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)),
                 backend, joined_here=True)


def lost_process(exc: ProcessLostError, world: World, model: Any, saved: Any
                 ) -> ProcessLostError:
    """``exc`` completed with what this process kept of the run (``saved``: the
    :class:`~.events.CheckpointSaved` of its last write, if any)."""
    if saved is not None:
        kept = (f"This process saved the best weights (step {model.best_step}) and what "
                f"resuming needs to {saved.path} at step {model.step}")
    elif world.is_main:
        kept = f"This process stopped at step {model.step} (no model file was asked for)"
    else:
        kept = "The model file keeps the last checkpoint the first process wrote"
    return ProcessLostError(f"{exc} {kept}; run the same command with resume=True to "
                            "continue.")


def lr_scale(scaling: str, world_size: int) -> float:
    """The learning rate's factor for ``world_size`` processes (``TrainConfig.lr_scaling``):
    a step of N processes averages N batches, a less noisy gradient that takes a larger rate."""
    if world_size <= 1 or scaling == "none":
        return 1.0
    return math.sqrt(world_size) if scaling == "sqrt" else float(world_size)


def seed_rank(rng: np.random.Generator, seed: int | None, rank: int, step: int) -> None:
    """Give rank ``rank`` (> 0) its own patch draws, in place (the samplers share ``rng``):
    seeded by the run's seed, the rank and the model's step (a resumed run draws afresh)."""
    rng.bit_generator.state = np.random.default_rng(
        [int(seed or 0), int(rank), int(step)]).bit_generator.state


def check_world_fits(patches_available: int, world_size: int, patch: tuple[int, ...]) -> None:
    """Refuse a world larger than the training data can feed: every process needs patches of
    its own, so the training region must hold at least one patch per process."""
    if world_size > 1 and patches_available < world_size:
        raise ConfigError(
            f"{world_size} processes need at least {world_size} distinct training patches, and "
            f"the training data holds {patches_available} patch(es) of {'x'.join(map(str, patch))} "
            "pixels; train on fewer processes (torchrun --nproc-per-node), with smaller patches "
            "(patch_size) or on more data."
        )


class ObjectiveStep(nn.Module):
    """The objective evaluated on the network as one module, so that DistributedDataParallel
    sees every pass of the network a step makes (GR2R makes several) as one forward."""

    def __init__(self, net: nn.Module, objective: Any) -> None:
        super().__init__()
        self.net = net
        self.objective = objective

    def forward(self, y: torch.Tensor, target: torch.Tensor | None,
                generator: torch.Generator) -> Any:
        return self.objective(self.net, y, target, generator)


def data_parallel(step: ObjectiveStep, world: World, device: torch.device) -> nn.Module:
    """``step`` wrapped in DistributedDataParallel in a world of several processes (which
    also makes every rank start from rank 0's weights), else ``step`` itself."""
    if not world.active:
        return step
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(step, device_ids=ids)
