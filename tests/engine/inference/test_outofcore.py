"""Out-of-core denoising into zarr stores, resumption, dask clusters, lazy training input."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import zarr

from napari_gr2r.engine import (
    InputError,
    TrainConfig,
    Trainer,
    denoise,
    denoise_to_zarr,
    iter_denoise_to_zarr,
    open_lazy,
)
from napari_gr2r.engine.inference.outofcore import read_state
from napari_gr2r.engine.io.omezarr import open_result
from tests.helpers import tiny_model

TOL = 2e-6  # relative to the intensity range (1000 grey levels): float32 rounding


def noisy(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.poisson(300, shape) + 100).astype(np.uint16)


def close(a: np.ndarray, b: np.ndarray) -> bool:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max()) < TOL * 1000


# --------------------------------------------------------------------------------------------
# equality with in-memory denoising


def test_2d_stack_from_zarr_v3_matches_in_memory(tmp_path):
    image = noisy((2, 100, 160))
    src = zarr.create_array(store=str(tmp_path / "in.zarr"), shape=image.shape,
                            chunks=(1, 64, 64), dtype=image.dtype)
    src[:] = image
    model = tiny_model(axes="TYX")
    expected = denoise(model, image, axes="TYX")
    calls = []
    out = denoise(model, src, axes="TYX", out=tmp_path / "out.zarr",
                  progress=lambda done, total: calls.append((done, total)))
    assert isinstance(out, zarr.Array)
    assert out.shape == image.shape
    assert out.dtype == np.float32
    # blocks of 64 (rounded to the net's multiple of 4) with a 24-pixel halo: many borders
    out2 = denoise_to_zarr(model, src, "TYX", tmp_path / "small-blocks.zarr", chunks=64)
    assert out2.chunks == (1, 64, 64)
    # blocks larger than a tile are tiled inside (the other path through the engine)
    out3 = denoise_to_zarr(model, src, "TYX", tmp_path / "tiled.zarr", chunks=128, tile=64)
    assert close(out[:], expected)
    assert close(out2[:], expected)
    assert close(out3[:], expected)
    total = calls[-1][1]
    assert calls[0] == (0, total)
    assert calls[-1] == (total, total)
    assert read_state(out)["complete"] is True
    np.testing.assert_array_equal(src[:], image)  # the input is untouched


def test_deep_network_halo_wider_than_the_tile_margin(tmp_path):
    image = noisy((200, 300), seed=7)
    model = tiny_model(depth=4)  # receptive radius 107: halo 112, blocks of 192
    out = denoise_to_zarr(model, image, "YX", tmp_path / "o.zarr")
    assert out.chunks == (192, 192)
    assert close(out[:], denoise(model, image, axes="YX"))


def test_2d_model_on_a_z_stack_batches_planes(tmp_path):
    stack = noisy((5, 80, 90), seed=6)
    src = zarr.create_array(store=str(tmp_path / "z.zarr"), shape=stack.shape,
                            chunks=(2, 64, 64), dtype=stack.dtype)
    src[:] = stack
    model = tiny_model(axes="YX")
    out = denoise_to_zarr(model, src, "ZYX", tmp_path / "o.zarr")
    assert out.chunks == (2, 80, 92)  # Z follows the input's chunks, YX one block
    assert close(out[:], denoise(model, stack, axes="ZYX"))


def test_3d_from_zarr_v2_and_dask_into_given_array(tmp_path):
    import dask.array as da

    volume = noisy((12, 60, 76), seed=1)
    src = zarr.create_array(store=str(tmp_path / "v2.zarr"), shape=volume.shape,
                            chunks=(8, 32, 32), dtype=volume.dtype, zarr_format=2)
    src[:] = volume
    model = tiny_model(dims=3, axes="ZYX")
    expected = denoise(model, volume, axes="ZYX")
    out = denoise_to_zarr(model, src, "ZYX", tmp_path / "o.zarr", chunks=(8, 32, 40))
    assert out.chunks == (8, 32, 40)
    assert close(out[:], expected)
    # an existing array given as the target: its chunks (rounded to the multiple) set the blocks
    target = zarr.create_array(store={}, shape=volume.shape, chunks=(6, 30, 38), dtype="float32")
    out = denoise_to_zarr(model, da.from_zarr(src), "ZYX", target)
    assert out is target
    assert close(target[:], expected)


def test_path_inputs_ome_zarr_and_tiff(tmp_path):
    import tifffile

    image = noisy((1, 90, 120), seed=2)
    root = zarr.open_group(str(tmp_path / "img.ome.zarr"), mode="w", zarr_format=2)
    root.create_array("0", data=image, chunks=(1, 64, 64))
    root.create_array("1", data=image[:, ::2, ::2], chunks=(1, 64, 64))
    root.attrs["multiscales"] = [{
        "version": "0.4",
        "axes": [{"name": "c", "type": "channel"}, {"name": "y", "type": "space"},
                 {"name": "x", "type": "space"}],
        "datasets": [{"path": "0"}, {"path": "1"}],
    }]
    level, axes = open_lazy(tmp_path / "img.ome.zarr")
    assert axes == "CYX"
    assert level.shape == image.shape
    model = tiny_model(axes="YX")
    expected = denoise(model, image[0], axes="YX")
    out = denoise_to_zarr(model, tmp_path / "img.ome.zarr", None, tmp_path / "o1.zarr")
    assert out.shape == image.shape
    assert close(out[0], expected)

    tifffile.imwrite(tmp_path / "img.tif", image[0])
    mapped, _ = open_lazy(tmp_path / "img.tif")
    assert isinstance(mapped, np.memmap)
    out = denoise_to_zarr(model, tmp_path / "img.tif", "YX", tmp_path / "o2.zarr")
    assert close(out[:], expected)


# --------------------------------------------------------------------------------------------
# memory

MEMORY_SCRIPT = """
import sys, zarr, torch
from torch import nn
from napari_gr2r.engine import GR2RModel, TrainConfig, denoise_to_zarr
from napari_gr2r.engine.noise.level import NoiseLevel
from napari_gr2r.engine.data.normalization import Normalization


class Smoother(nn.Module):
    # a one-layer network: the machinery, not the network, is measured here
    multiple, receptive_radius = 4, 1

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


def rss_mb(key):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(key)) / 1024


model = GR2RModel(net=Smoother().eval(), config=TrainConfig(width=4, depth=2, members=1, tta=1), axes="YX",
                  channels=1, dims=2, normalization=Normalization([100.0], [1100.0]),
                  noise_level=NoiseLevel([0.0], [1e-3], [1e-3]))
small, big, out = sys.argv[1:4]
denoise_to_zarr(model, zarr.open_array(small, mode="r"), "YX", out + ".warm", chunks=256)
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")  # reset the peak resident size (VmHWM)
before = rss_mb("VmRSS")
denoise_to_zarr(model, zarr.open_array(big, mode="r"), "YX", out, chunks=256)
print(rss_mb("VmHWM") - before)
"""


def _can_reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _can_reset_peak_rss(), reason="needs Linux /proc/self/clear_refs")
def test_peak_memory_is_far_below_the_image_size(tmp_path):
    """A 4096x4096 uint16 zarr image (32 MB; 64 MB as the float32 result) is denoised with
    the resident memory growing by less than half the result's size (measured: 1-2 MB, and up
    to 17 MB on a loaded machine, where thread pools and allocator arenas grow)."""
    import subprocess
    import sys

    shape = (4096, 4096)
    big = zarr.create_array(store=str(tmp_path / "big.zarr"), shape=shape, chunks=(256, 256),
                            dtype="uint16")
    for y in range(0, shape[0], 256):
        big[y:y + 256] = noisy((256, shape[1]), seed=y)
    # the first run, on a band of the same width, pages in the code and buffers that every
    # run needs (batches of the same shapes); the second is measured
    small = zarr.create_array(store=str(tmp_path / "small.zarr"), shape=(512, shape[1]),
                              chunks=(256, 256), dtype="uint16")
    small[:] = big[:512]
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(tmp_path / "small.zarr"),
         str(tmp_path / "big.zarr"), str(tmp_path / "out.zarr")],
        capture_output=True, text=True, check=False, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    growth_mb = float(result.stdout.split()[-1])
    output_mb = np.prod(shape) * 4 / 2**20
    assert growth_mb < output_mb / 2, f"peak RSS grew by {growth_mb:.1f} MB"
    out = open_result(str(tmp_path / "out.zarr"), mode="r")
    assert out.nchunks_initialized == out.nchunks == 16 * 16
    assert read_state(out)["complete"] is True


# --------------------------------------------------------------------------------------------
# interruption and resumption


def test_interrupted_run_resumes_and_skips_written_blocks(tmp_path):
    image = noisy((130, 250), seed=3)
    model = tiny_model()
    expected = denoise(model, image, axes="YX")
    path = tmp_path / "out.zarr"
    written = []

    def stop_after_three():
        return len(written) >= 3

    def run_until_stopped():
        for step in iter_denoise_to_zarr(model, image, "YX", path, chunks=64,
                                         should_stop=stop_after_three):
            if step.written:
                written.append(step.done)

    with pytest.raises(InterruptedError):
        run_until_stopped()
    state = read_state(open_result(str(path), mode="r"))
    assert state["blocks_done"] == 3
    assert state["complete"] is False

    steps = list(iter_denoise_to_zarr(model, image, "YX", path, chunks=64))
    first, last = steps[0], steps[-1]
    total = first.total
    assert total == 3 * 4
    assert first.skipped == 3
    assert first.done == 3
    assert last.written == total - 3
    assert last.done == total
    assert close(open_result(str(path), mode="r")[:], expected)

    # a finished output is not recomputed
    again = list(iter_denoise_to_zarr(model, image, "YX", path, chunks=64))
    assert len(again) == 1
    assert again[0].skipped == total


def test_progress_callback_raising_keeps_finished_blocks(tmp_path):
    image = noisy((100, 100), seed=4)
    model = tiny_model()

    def boom(done, total):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        denoise_to_zarr(model, image, "YX", tmp_path / "o.zarr", chunks=48, progress=boom)
    assert read_state(open_result(str(tmp_path / "o.zarr"), mode="r"))["blocks_done"] == 2
    out = denoise_to_zarr(model, image, "YX", tmp_path / "o.zarr")
    assert close(out[:], denoise(model, image, axes="YX"))


def test_refuses_foreign_or_mismatched_outputs(tmp_path):
    image = noisy((64, 64))
    model = tiny_model()
    denoise_to_zarr(model, image, "YX", tmp_path / "o.zarr")
    with pytest.raises(InputError, match="another model"):
        denoise_to_zarr(tiny_model(seed=1), image, "YX", tmp_path / "o.zarr")
    out = denoise_to_zarr(tiny_model(seed=1), image, "YX", tmp_path / "o.zarr", overwrite=True)
    assert close(out[:], denoise(tiny_model(seed=1), image, axes="YX"))
    foreign = zarr.create_array(store=str(tmp_path / "f.zarr"), shape=(64, 64), dtype="f4")
    foreign[:] = 7
    with pytest.raises(InputError, match="did not write"):
        denoise_to_zarr(model, image, "YX", tmp_path / "f.zarr")
    assert (foreign[:] == 7).all()
    (tmp_path / "notes.txt").write_text("keep me")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "data.csv").write_text("1,2")
    for path in (tmp_path / "notes.txt", tmp_path / "folder"):
        for overwrite in (False, True):
            with pytest.raises(InputError, match="neither a zarr array nor a result"):
                denoise_to_zarr(model, image, "YX", path, overwrite=overwrite)
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    assert (tmp_path / "folder" / "data.csv").read_text() == "1,2"
    with pytest.raises(InputError, match="is the input"):
        denoise_to_zarr(model, tmp_path / "o.zarr", "YX", tmp_path / "o.zarr", overwrite=True)
    with pytest.raises(InputError, match="is the input"):
        denoise_to_zarr(model, foreign, "YX", zarr.open_array(str(tmp_path / "f.zarr")))
    assert (foreign[:] == 7).all()
    with pytest.raises(InputError, match="shape"):
        denoise_to_zarr(model, image, "YX", zarr.create_array(store={}, shape=(64, 65),
                                                               dtype="f4"))
    with pytest.raises(InputError, match="sample axis"):
        denoise_to_zarr(tiny_model(axes="TYX"), noisy((2, 64, 64)), "TYX",
                        zarr.create_array(store={}, shape=(2, 64, 64), chunks=(2, 32, 32),
                                          dtype="f4"))


# --------------------------------------------------------------------------------------------
# dask.distributed


def _blocks_off(result: np.ndarray, expected: np.ndarray, block: int, stopped_at: int) -> str:
    """Which (sample, Y, X) blocks of a result differ from the expected one, and by how much:
    what a failure needs to tell a block computed from other input from a rounding spread."""
    off = []
    for t in range(result.shape[0]):
        for y in range(0, result.shape[1], block):
            for x in range(0, result.shape[2], block):
                diff = result[t, y:y + block, x:x + block] - expected[t, y:y + block, x:x + block]
                if np.abs(diff).max() >= TOL * 1000:
                    off.append(f"({t}, {y}, {x}): max {np.abs(diff).max():.4g}, "
                               f"mean {diff.mean():+.4g}")
    return f"stopped after {stopped_at} blocks; blocks off: " + "; ".join(off)


def test_local_cluster_gives_the_same_result(tmp_path):
    distributed = pytest.importorskip("distributed")
    image = noisy((2, 120, 140), seed=5)
    src = zarr.create_array(store=str(tmp_path / "in.zarr"), shape=image.shape,
                            chunks=(1, 64, 64), dtype=image.dtype)
    src[:] = image
    model = tiny_model(axes="TYX")
    expected = denoise(model, image, axes="TYX")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        with distributed.get_task_stream(client) as tasks:
            out = denoise_to_zarr(model, src, "TYX", tmp_path / "out.zarr", chunks=64,
                                  batch_size=1, client=client)
        blocks = [t for t in tasks.data if "_cluster_task" in t["key"]]
        assert len(blocks) == 2 * 2 * 3
        assert len({t["worker"] for t in blocks}) == 2
        assert close(out[:], expected)
        # interrupted on the cluster, then resumed there
        recorded = []

        def stop_after_two():
            return bool(recorded) and recorded[-1] >= 2

        with pytest.raises(InterruptedError):
            denoise_to_zarr(model, src, "TYX", tmp_path / "resumed.zarr", chunks=64,
                            batch_size=1, client=client, should_stop=stop_after_two,
                            progress=lambda done, total: recorded.append(done))
        stopped_at = read_state(open_result(str(tmp_path / "resumed.zarr")))["blocks_done"]
        assert 2 <= stopped_at < 12
        steps = list(iter_denoise_to_zarr(model, src, "TYX", tmp_path / "resumed.zarr",
                                          batch_size=1, client=client))
        assert steps[0].skipped == stopped_at
        assert steps[-1].written == 12 - stopped_at
        resumed = open_result(str(tmp_path / "resumed.zarr"))[:]
        assert close(resumed, expected), _blocks_off(resumed, expected, 64, stopped_at)
        # the plain denoise() call routes there too
        out = denoise(model, src, axes="TYX", out=tmp_path / "out2.zarr", client=client)
        assert close(out[:], expected)
        assert read_state(out)["complete"] is True
        with pytest.raises(InputError, match="shared"):
            denoise_to_zarr(model, src, "TYX", zarr.create_array(
                store={}, shape=image.shape, chunks=(1, 64, 64), dtype="f4"), client=client)


# --------------------------------------------------------------------------------------------
# lazy training input


class CountingStore(zarr.storage.WrapperStore):
    """A zarr store that records which keys are read."""

    def __init__(self, store):
        super().__init__(store)
        self.reads = Counter()

    def _with_store(self, store):
        return type(self)(store)

    async def get(self, key, prototype, byte_range=None):
        self.reads[key] += 1
        return await self._store.get(key, prototype, byte_range)


TRAIN_CFG = dict(steps=2, batch_size=2, patch_size=32, width=4, depth=2, members=1, val_every=2,
                 event_every=1, seed=0)
# statistics: 24 blocks; training and validation pools: 16 blocks each (no refresh in 2 steps);
# the 64 patches drawn at the end to keep the input's brightness (keep_mean) refresh 2 blocks
BLOCK_READS = 24 + 16 + 16 + 2


def test_training_on_zarr_reads_one_chunk_per_sampled_block(tmp_path):
    shape = (8, 1024, 1024)
    arr = zarr.create_array(store=str(tmp_path / "train.zarr"), shape=shape,
                            chunks=(1, 256, 256), dtype="uint16")
    for t in range(shape[0]):
        arr[t] = noisy(shape[1:], seed=t)
    store = CountingStore(zarr.storage.LocalStore(str(tmp_path / "train.zarr"), read_only=True))
    trainer = Trainer(zarr.open_array(store=store, mode="r"), "TYX", TrainConfig(**TRAIN_CFG),
                      device="cpu")
    list(trainer.iter_fit())
    chunk_reads = {k: n for k, n in store.reads.items() if k.startswith("c/")}
    # each block lies inside one 256x256 chunk, so it decompresses exactly one chunk
    assert sum(chunk_reads.values()) == BLOCK_READS
    assert len(chunk_reads) < 8 * 4 * 4


def test_training_on_a_huge_lazy_array_computes_few_chunks():
    """A 1-gigapixel dask array (2 GB as uint16) is never materialised: training computes
    one chunk per sampled block."""
    import dask.array as da

    computed = []

    def make_chunk(block_info=None):
        loc = block_info[None]["chunk-location"]
        computed.append(loc)
        return noisy((1, 256, 256), seed=hash(loc) % 2**32)

    huge = da.map_blocks(make_chunk, dtype=np.uint16, chunks=((1,) * 64, (256,) * 16,
                                                               (256,) * 16))
    assert huge.nbytes == 2 * 2**30
    trainer = Trainer(huge, "TYX", TrainConfig(**TRAIN_CFG), device="cpu")
    finished = list(trainer.iter_fit())[-1]
    assert finished.stopped is False
    assert len(computed) == BLOCK_READS
