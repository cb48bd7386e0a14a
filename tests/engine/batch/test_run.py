"""denoise_files: a folder in, a folder of results out; skips, failures, resumption, formats."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import zarr

from napari_gr2r import engine
from napari_gr2r.engine.batch.run import (
    FileDone,
    FileFailed,
    FileProgress,
    FilesFinished,
    FileSkipped,
    FileStarted,
    denoise_files,
    expand_inputs,
    output_path,
)
from napari_gr2r.engine.errors import InputError
from napari_gr2r.engine.io.formats import read_image
from napari_gr2r.engine.io.omezarr import open_result
from tests.helpers import tiny

RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def model():
    noisy = RNG.normal(100, 20, (48, 48)).astype(np.float32)
    return engine.train(noisy, "YX", tiny(steps=2, width=8), device="cpu")


def _image(shape=(40, 56)):
    return RNG.normal(100, 20, shape).astype(np.float32)


@pytest.fixture
def folder(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for i in range(4):
        tifffile.imwrite(raw / f"img{i}.tif", _image())
    (raw / "broken.tif").write_bytes(b"not a TIFF at all")
    (raw / "notes.txt").write_text("not an image")  # not an image: not offered
    (raw / ".img9.tif.tmp").write_bytes(b"")  # hidden: not offered
    return raw


def _by_type(events, kind):
    return [e for e in events if isinstance(e, kind)]


def test_folder_with_a_broken_file(model, folder, tmp_path):
    out = tmp_path / "out"
    events = list(denoise_files(model, [folder], out, device="cpu"))
    assert isinstance(events[-1], FilesFinished)
    done = _by_type(events, FileDone)
    failed = _by_type(events, FileFailed)
    assert sorted(p.name for p in out.iterdir()) == [f"img{i}.tif" for i in range(4)]
    assert [e.path for e in failed] == [str(folder / "broken.tif")]
    assert "broken.tif is not a TIFF file" in failed[0].reason
    assert len(done) == 4
    assert events[-1].done == 4
    assert not events[-1].stopped
    assert events[-1].failed == ((str(folder / "broken.tif"), failed[0].reason),)
    for event in done:
        noisy = tifffile.imread(event.path)
        np.testing.assert_allclose(tifffile.imread(event.output),
                                   engine.denoise(model, noisy, "YX", device="cpu"), atol=1e-4)
        assert event.shape == noisy.shape
        assert event.axes == "YX"
    # every file is started, has block progress, ends once, in input order
    started = _by_type(events, FileStarted)
    assert [e.index for e in started] == list(range(5))
    assert all(e.done <= e.total for e in _by_type(events, FileProgress))
    assert {e.index for e in _by_type(events, FileProgress) if e.done == e.total} == {1, 2, 3, 4}

    # a re-run skips what is done; the broken file is tried (and reported) again
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = list(denoise_files(model, [folder], out, device="cpu"))
    assert len(_by_type(again, FileSkipped)) == 4
    assert len(_by_type(again, FileFailed)) == 1
    assert not _by_type(again, FileDone)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes
    assert again[-1].outputs == tuple(str(out / f"img{i}.tif") for i in range(4))
    # overwrite does them again
    redo = list(denoise_files(model, [folder], out, device="cpu", overwrite=True))
    assert len(_by_type(redo, FileDone)) == 4
    # results of other test-time flips are not taken for done: refused, named, kept
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    flipped = list(denoise_files(model, [folder], out, device="cpu", tta=2))
    assert not _by_type(flipped, FileSkipped)
    why = "one pass of the network, not the mean of 2 flips"
    refused = [e for e in _by_type(flipped, FileFailed) if why in e.reason]
    assert len(refused) == 4
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes
    redo = list(denoise_files(model, [folder], out, device="cpu", tta=2, overwrite=True))
    assert len(_by_type(redo, FileDone)) == 4
    again = list(denoise_files(model, [folder], out, device="cpu", tta=2))
    assert len(_by_type(again, FileSkipped)) == 4


def test_inputs_expand_files_folders_and_globs(folder, tmp_path):
    expected = [str(folder / n) for n in ("broken.tif", "img0.tif", "img1.tif", "img2.tif",
                                          "img3.tif")]
    assert expand_inputs(folder) == expected
    assert expand_inputs([str(folder / "img*.tif")]) == expected[1:]
    # each once, in the order given
    assert expand_inputs([folder / "img3.tif", folder]) == [expected[4], *expected[:4]]
    with pytest.raises(InputError, match="No image files match"):
        expand_inputs([str(folder / "*.png")])
    assert expand_inputs([tmp_path / "missing.tif"]) == [str(tmp_path / "missing.tif")]


def test_output_names_follow_the_inputs(tmp_path):
    assert output_path("a/cells.tif", tmp_path) == tmp_path / "cells.tif"
    assert output_path("a/cells.ome.tiff", tmp_path) == tmp_path / "cells.ome.tiff"
    assert output_path("a/cells.png", tmp_path) == tmp_path / "cells.tif"
    assert output_path("a/big.ome.zarr/", tmp_path) == tmp_path / "big.zarr"
    assert output_path("a/cells.tif", tmp_path, "_dn", "zarr") == tmp_path / "cells_dn.zarr"
    with pytest.raises(InputError, match="Unknown output format"):
        output_path("a/cells.tif", tmp_path, out_format="png")


def test_clashes_missing_files_and_misfits_fail_alone(model, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    tifffile.imwrite(raw / "a.tif", _image())
    tifffile.imwrite(raw / "a.tiff", _image())  # same result name as a.tif, other extension
    tifffile.imwrite(raw / "rgb.tif", RNG.random((3, 40, 56)).astype(np.float32),
                     metadata={"axes": "CYX"}, photometric="minisblack")
    inputs = [raw / "a.tif", raw / "a.tiff", raw / "rgb.tif", tmp_path / "gone.tif"]
    events = list(denoise_files(model, inputs, tmp_path / "out", out_format="tif",
                                device="cpu"))
    reasons = {e.path.rsplit("/", 1)[-1]: e.reason for e in _by_type(events, FileFailed)}
    assert set(reasons) == {"a.tiff", "rgb.tif", "gone.tif"}
    assert "would also be the result of" in reasons["a.tiff"]
    assert "trained on 1 channel" in reasons["rgb.tif"]
    assert "No image at" in reasons["gone.tif"]
    assert [e.output for e in _by_type(events, FileDone)] == [str(tmp_path / "out" / "a.tif")]
    # results into the input folder under the same names would replace the inputs
    events = list(denoise_files(model, [raw / "a.tif"], raw, device="cpu"))
    assert "would overwrite it" in _by_type(events, FileFailed)[0].reason
    # with a suffix the same folder is fine
    events = list(denoise_files(model, [raw / "a.tif"], raw, suffix="_dn", device="cpu"))
    assert _by_type(events, FileDone)[0].output == str(raw / "a_dn.tif")


def test_formats_and_pixel_sizes_carry_over(model, tmp_path):
    import imageio.v3 as iio

    raw = tmp_path / "raw"
    raw.mkdir()
    tifffile.imwrite(raw / "cells.ome.tif", _image(), ome=True,
                     metadata={"axes": "YX", "PhysicalSizeX": 0.325, "PhysicalSizeY": 0.325})
    iio.imwrite(raw / "photo.png", (RNG.random((40, 56)) * 255).astype(np.uint8))
    arr = zarr.create_array(store=str(raw / "stack.zarr"), shape=(2, 40, 56), dtype="float32",
                            chunks=(1, 40, 56))
    arr[...] = _image((2, 40, 56))
    arr.attrs.update(axes="TYX", scale=[1.0, 0.5, 0.5], unit="µm")
    out = tmp_path / "out"
    events = list(denoise_files(model, [raw], out, device="cpu"))
    assert events[-1].done == 3, [e for e in events if isinstance(e, FileFailed)]
    assert sorted(p.name for p in out.iterdir()) == ["cells.ome.tif", "photo.tif", "stack.zarr"]
    assert read_image(out / "cells.ome.tif")[1]["scale"] == [0.325, 0.325]
    with tifffile.TiffFile(out / "cells.ome.tif") as tif:
        assert tif.is_ome
    data, meta = read_image(out / "stack.zarr")
    assert meta == {"axes": "TYX", "scale": [1.0, 0.5, 0.5], "unit": "µm"}
    np.testing.assert_allclose(data[...], engine.denoise(model, arr[...], "TYX", device="cpu"),
                               atol=1e-4)
    png = tifffile.imread(out / "photo.tif")
    assert png.shape == (40, 56)
    assert png.dtype == np.float32


def test_stop_keeps_finished_results_and_a_zarr_run_resumes(model, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    tifffile.imwrite(raw / "a.tif", _image())
    big = zarr.create_array(store=str(raw / "b.zarr"), shape=(4, 40, 56), dtype="float32",
                            chunks=(1, 40, 56))
    big[...] = _image((4, 40, 56))
    big.attrs["axes"] = "TYX"  # one block per time point
    out = tmp_path / "out"
    blocks = []

    def stop_after_two_blocks():
        return len(blocks) >= 2

    events = []
    for event in denoise_files(model, [raw], out, device="cpu",
                               batch_size=1, should_stop=stop_after_two_blocks):
        events.append(event)
        if isinstance(event, FileProgress) and event.path.endswith("b.zarr") and event.done:
            blocks.append(event.done)
    assert events[-1].stopped
    assert events[-1].done == 1
    assert (out / "a.tif").exists()
    state = open_result(str(out / "b.zarr"), mode="r").attrs["napari_gr2r"]
    assert not state["complete"]
    assert state["blocks_done"] >= 2
    # the second run skips a.tif and resumes b.zarr where it stopped
    events = list(denoise_files(model, [raw], out, device="cpu"))
    first = next(e for e in events if isinstance(e, FileProgress))
    assert first.path.endswith("b.zarr")
    assert first.done >= 2
    assert events[-1].done == 1
    assert events[-1].skipped == 1
    np.testing.assert_allclose(open_result(str(out / "b.zarr"), mode="r")[...],
                               engine.denoise(model, big[...], "TYX", device="cpu"), atol=1e-4)


def test_files_run_on_a_dask_cluster(model, folder, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        events = list(denoise_files(model, [folder], tmp_path / "out", client=client))
    assert events[-1].done == 4
    assert [e.path.rsplit("/", 1)[-1] for e in _by_type(events, FileFailed)] == ["broken.tif"]
    for i in range(4):
        noisy = tifffile.imread(folder / f"img{i}.tif")
        np.testing.assert_allclose(tifffile.imread(tmp_path / "out" / f"img{i}.tif"),
                                   engine.denoise(model, noisy, "YX", device="cpu"), atol=1e-4)
