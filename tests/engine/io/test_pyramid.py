"""Lower-resolution levels of large OME-Zarr results: their values, their metadata as an
OME-Zarr validator and napari-gr2r's reader see them, and a run stopped while they are written."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from ome_zarr_models.v05 import Image

from napari_gr2r.engine import iter_denoise_to_zarr, open_result, read_image
from napari_gr2r.engine.io import pyramid
from napari_gr2r.engine.io.omezarr import levels_listed
from tests.helpers import tiny_model


@pytest.fixture
def small_pyramids(monkeypatch):
    """Levels for planes above 64 pixels on a side, down to 20, written a chunk at a time:
    large results in miniature."""
    monkeypatch.setattr(pyramid, "PYRAMID_MIN", 64)
    monkeypatch.setattr(pyramid, "PYRAMID_TOP", 20)
    monkeypatch.setattr(pyramid, "READ_BYTES", 1)


def noisy(shape: tuple[int, ...]) -> np.ndarray:
    return (np.random.default_rng(2).poisson(300, shape) + 100).astype(np.uint16)


def test_a_plane_gets_levels_only_when_it_is_large():
    assert pyramid.levels_for((4096, 4096)) == 0
    assert pyramid.levels_for((30, 4097, 100)) == 3  # 4097 -> 2049 -> 1025 -> 513
    assert pyramid.levels_for((20000, 20000)) == 5
    odd = np.arange(15, dtype=np.float32).reshape(3, 5)
    np.testing.assert_allclose(pyramid.halve(odd), [[3, 5, 6.5], [10.5, 12.5, 14]])


def test_a_large_result_has_levels_that_readers_see(small_pyramids, tmp_path):
    model = tiny_model(axes="TYX")
    out = tmp_path / "r.zarr"
    pixel = {"scale": [2.0, 0.5, 0.5], "unit": "µm", "time_unit": "s"}
    steps = list(iter_denoise_to_zarr(model, noisy((2, 101, 150)), "TYX", out,
                                      pixel_size=pixel))
    assert steps[-1].levels == 3
    assert steps[-1].done == steps[-1].total
    assert steps[-2].levels_pending == 3  # said before they are written, which takes a while
    group = zarr.open_group(str(out), mode="r")
    Image.from_zarr(group)  # the OME-Zarr validator accepts the multiscale image
    datasets = group.attrs["ome"]["multiscales"][0]["datasets"]
    assert [d["path"] for d in datasets] == ["0", "1", "2", "3"]
    assert [d["coordinateTransformations"][0]["scale"] for d in datasets] == [
        [2.0, 0.5, 0.5], [2.0, 1.0, 1.0], [2.0, 2.0, 2.0], [2.0, 4.0, 4.0]]
    levels = pyramid.result_levels(open_result(str(out)))
    assert [lv.shape for lv in levels] == [(2, 101, 150), (2, 51, 75), (2, 26, 38), (2, 13, 19)]
    expected = levels[0][:]
    for level in levels[1:]:
        expected = pyramid.halve(expected)
        np.testing.assert_allclose(level[:], expected, rtol=1e-6)
    # the full resolution is what napari-gr2r reads, with its pixel size
    data, meta = read_image(out)
    assert data.shape == (2, 101, 150)
    assert meta["scale"] == [2.0, 0.5, 0.5]
    # a finished store run again keeps its levels as they are
    written = (out / "3" / "zarr.json").stat().st_mtime_ns
    steps = list(iter_denoise_to_zarr(model, noisy((2, 101, 150)), "TYX", out))
    assert steps[0].skipped == steps[0].total
    assert steps[-1].levels == 3
    assert not any(step.levels_pending for step in steps)  # nothing left to write
    assert (out / "3" / "zarr.json").stat().st_mtime_ns == written
    assert levels_listed(zarr.open_group(str(out), mode="r")) == 4


def test_levels_stopped_midway_are_written_by_the_next_run(small_pyramids, tmp_path):
    model = tiny_model(axes="TYX")
    out = tmp_path / "r.zarr"
    blocks_done = []

    def run_until_stopped() -> None:
        for step in iter_denoise_to_zarr(model, noisy((3, 101, 150)), "TYX", out,
                                         should_stop=lambda: bool(blocks_done)):
            if step.done == step.total:
                blocks_done.append(True)  # stop once the full resolution is complete

    with pytest.raises(InterruptedError, match="lower-resolution levels"):
        run_until_stopped()
    assert levels_listed(zarr.open_group(str(out), mode="r")) == 1  # level 0 only
    full = open_result(str(out))[:]
    steps = list(iter_denoise_to_zarr(model, noisy((3, 101, 150)), "TYX", out))
    assert steps[-1].levels == 3
    levels = pyramid.result_levels(open_result(str(out)))
    np.testing.assert_array_equal(levels[0][:], full)  # the blocks were not denoised again
    np.testing.assert_allclose(levels[1][:], pyramid.halve(full), rtol=1e-6)
