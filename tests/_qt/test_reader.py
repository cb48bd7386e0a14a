"""File > Open with napari-gr2r's reader: a Fiji or OME file opens with its pixel size, units and
axis names, each channel a layer, and the widget reads its axes instead of guessing them."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import tifffile
import zarr

from napari_gr2r import _reader, engine


def _hyperstack() -> np.ndarray:
    """T 3 × C 2 × Z 4 × Y 40 × X 48, each channel and plane told apart by its values."""
    t, c, z = np.meshgrid(np.arange(3), np.arange(2), np.arange(4), indexing="ij")
    base = (100 * t + 10 * c + z).astype(np.uint16)[..., None, None]
    return np.broadcast_to(base, (3, 2, 4, 40, 48)).copy()


@pytest.fixture
def fiji_file(tmp_path):
    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, _hyperstack().transpose(0, 2, 1, 3, 4), imagej=True,
                     resolution=(1 / 0.13, 1 / 0.13),
                     metadata={"axes": "TZCYX", "spacing": 0.5, "unit": "micron",
                               "finterval": 2.0})
    return path


def test_a_fiji_hyperstack_opens_with_its_grid_and_the_widget_reads_its_axes(
        make_napari_viewer, fiji_file):
    viewer = make_napari_viewer()
    layers = viewer.open(str(fiji_file), plugin="napari-gr2r")
    assert [layer.name for layer in layers] == ["C1-cells", "C2-cells"]
    for c, layer in enumerate(layers):
        assert isinstance(layer.data, np.ndarray)  # a small file: in memory, as napari's own
        np.testing.assert_array_equal(layer.data, _hyperstack()[:, c])
        np.testing.assert_allclose(layer.scale, (2.0, 0.5, 0.13, 0.13))
        assert tuple(layer.axis_labels) == ("t", "z", "y", "x")
        assert [str(u) for u in layer.units] == ["second", "micrometer", "micrometer",
                                                 "micrometer"]
    # napari's own reader: one layer, every axis 1 apart and unnamed
    (builtin,) = viewer.open(str(fiji_file), plugin="napari")
    assert builtin.data.shape == (3, 4, 2, 40, 48)
    assert tuple(builtin.scale) == (1.0,) * 5

    _, widget = viewer.window.add_plugin_dock_widget("napari-gr2r", "GR2R Denoise")
    panel = widget.data_panel
    panel.layer_combo.setCurrentText("C1-cells")
    assert panel.axes_edit.text() == "TZYX"
    assert panel.axes_message.text().startswith("✓")
    assert "pixel size" not in panel.axes_message.text()
    # the layer napari's own reader made: its axes read from the file, and what it lost said
    panel.layer_combo.setCurrentText(builtin.name)
    assert panel.axes_edit.text() == "TZCYX"
    message = panel.axes_message.text()
    assert "from the file it was opened from" in message
    assert "File > Open, reader napari-gr2r" in message


def test_a_tiff_larger_than_memory_allows_opens_lazily(make_napari_viewer, fiji_file,
                                                      monkeypatch):
    """Above LARGE_BYTES a TIFF is not read whole, and splitting its channels copies none; the
    widget then denoises it block by block (a zarr store)."""
    from napari_gr2r._qt._layers import is_large

    monkeypatch.setattr(_reader, "LARGE_BYTES", 1000)
    viewer = make_napari_viewer()
    layers = viewer.open(str(fiji_file), plugin="napari-gr2r")
    assert all(isinstance(layer.data, da.Array) for layer in layers)
    np.testing.assert_array_equal(np.asarray(layers[1].data), _hyperstack()[:, 1])
    monkeypatch.undo()
    assert all(is_large(layer) for layer in layers)


def test_what_the_reader_takes_and_what_it_leaves(tmp_path):
    assert _reader.get_reader(str(tmp_path / "a.png")) is None
    assert _reader.get_reader([str(tmp_path / "a.tif"), str(tmp_path / "b.tif")]) is None
    assert _reader.get_reader(str(tmp_path / "a.ome.tif")) is _reader.read_layers
    assert _reader.get_reader([str(tmp_path / "a.zarr")]) is _reader.read_layers
    # a file that does not name its axes: the pixels alone, as napari's own reader gives them
    # (the widget then guesses the axes and says so)
    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((2, 5, 16, 16), np.uint8),
                     photometric="minisblack")
    ((data, kwargs, kind),) = _reader.read_layers(str(tmp_path / "plain.tif"))
    assert (data.shape, kwargs, kind) == ((2, 5, 16, 16), {"name": "plain"}, "image")
    # a colour image: one RGB layer, as napari's own reader gives it
    tifffile.imwrite(tmp_path / "photo.tif", np.zeros((16, 24, 3), np.uint8), photometric="rgb")
    ((data, kwargs, _),) = _reader.read_layers(str(tmp_path / "photo.tif"))
    assert data.shape == (16, 24, 3)
    assert kwargs["rgb"]
    assert kwargs["axis_labels"] == ("y", "x")
    assert "channel_axis" not in kwargs
    # a damaged file: one line that names it
    (tmp_path / "broken.tif").write_bytes(b"II*\x00" + b"\x00" * 10)
    with pytest.raises(engine.GR2RError, match=r"broken\.tif"):
        _reader.read_layers(str(tmp_path / "broken.tif"))


def test_another_programs_ome_zarr_pyramid_opens_multiscale(tmp_path):
    """An OME-Zarr 0.4 image with two levels, as ome-zarr-py writes them: napari reads the level
    the view needs, not the whole plane."""
    root = zarr.open_group(str(tmp_path / "other.zarr"), mode="w", zarr_format=2)
    image = np.arange(2 * 64 * 64, dtype=np.uint16).reshape(2, 64, 64)
    root.create_array("0", data=image, chunks=(1, 32, 32))
    root.create_array("1", data=image[:, ::2, ::2], chunks=(1, 32, 32))
    axes = [{"name": "c", "type": "channel"}] + [
        {"name": n, "type": "space", "unit": "micrometer"} for n in "yx"]
    root.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": [
        {"path": str(k), "coordinateTransformations": [{"type": "scale",
                                                        "scale": [1, 0.2 * 2**k, 0.2 * 2**k]}]}
        for k in (0, 1)]}]
    ((data, kwargs, _),) = _reader.read_layers(str(tmp_path / "other.zarr"))
    assert [level.shape for level in data] == [(2, 64, 64), (2, 32, 32)]
    np.testing.assert_array_equal(np.asarray(data[1]), image[:, ::2, ::2])
    assert kwargs["name"] == ["C1-other", "C2-other"]
    assert kwargs["scale"] == [0.2, 0.2]
    assert kwargs["axis_labels"] == ("y", "x")
    # levels whose sizes do not shrink are not a pyramid: the full resolution alone
    root.attrs["multiscales"] = [{**root.attrs["multiscales"][0], "datasets": [
        {"path": "1"}, {"path": "0"}]}]
    ((data, _, _),) = _reader.read_layers(str(tmp_path / "other.zarr"))
    assert not isinstance(data, list)


def test_a_plain_zarr_array_opens_lazily(tmp_path):
    store = zarr.create_array(store=str(tmp_path / "raw.zarr"), shape=(64, 64), chunks=(32, 32),
                              dtype="float32")
    store[:] = 1.5
    ((data, kwargs, _),) = _reader.read_layers(str(tmp_path / "raw.zarr"))
    assert isinstance(data, da.Array)
    assert float(data.mean().compute()) == 1.5
    assert kwargs["name"] == "raw"


def test_a_file_whose_pixels_are_1_micron_is_not_said_to_lose_its_size(make_napari_viewer,
                                                                        tmp_path):
    path = tmp_path / "unit.tif"
    tifffile.imwrite(path, np.zeros((3, 32, 32), np.uint16), imagej=True, resolution=(1, 1),
                     metadata={"axes": "ZYX", "spacing": 1.0, "unit": "micron"})
    assert engine.read_image(path)[1]["scale"] == [1.0, 1.0, 1.0]
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari")
    _, widget = viewer.window.add_plugin_dock_widget("napari-gr2r", "GR2R Denoise")
    message = widget.data_panel.axes_message.text()
    assert "from the file it was opened from" in message
    assert "pixel size" not in message
