"""Large layers (dask, zarr, multiscale) in the widget: trained on and denoised without loading."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import zarr
from qtpy.QtCore import Qt
from tests.helpers import shrink_widget

from napari_gr2r import engine
from napari_gr2r._qt._layers import LARGE_BYTES, is_large

PLUGIN, WIDGET = "napari-gr2r", "GR2R Denoise"


@pytest.fixture
def viewer_widget(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    return viewer, widget


def zarr_stack(folder, planes: int):
    """A planes x 256 x 256 uint16 zarr store on disk, opened as a dask array."""
    rng = np.random.default_rng(3)
    values = (1000 + 200 * rng.standard_normal((planes, 256, 256))).clip(0, 65535)
    values = values.astype(np.uint16)
    store = folder / "input.zarr"
    arr = zarr.create_array(store=str(store), shape=values.shape, chunks=(1, 128, 128),
                            dtype="uint16")
    arr[:] = values
    return da.from_zarr(str(store)), values


@pytest.fixture
def lazy_stack(tmp_path):
    return zarr_stack(tmp_path, 2)


def tiny(widget, steps: int) -> None:
    shrink_widget(widget, steps, width=4, batch=2, net_dims="2d", preview_every=0)


def test_large_layers_are_recognised():
    class Layer:
        multiscale = False

        def __init__(self, data):
            self.data = data

    assert not is_large(Layer(np.zeros((8, 8), np.uint16)))
    assert is_large(Layer(da.zeros((8, 8))))
    assert is_large(Layer(zarr.zeros((8, 8))))
    big = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), (LARGE_BYTES // 4 + 1,), (0,))
    assert big.nbytes > LARGE_BYTES
    assert is_large(Layer(np.asarray(big)))


def test_train_and_denoise_a_dask_layer_into_zarr(viewer_widget, qtbot, lazy_stack, tmp_path):
    viewer, widget = viewer_widget
    lazy, values = lazy_stack
    layer = viewer.add_image(lazy, name="lazy", scale=(2.0, 0.5, 0.25), translate=(1, 2, 3),
                             units=("µm", "µm", "µm"), axis_labels=("z", "y", "x"),
                             contrast_limits=(500, 1500))
    assert widget.data_panel.axes_edit.text() == "ZYX"
    tiny(widget, steps=6)

    qtbot.mouseClick(widget.training_panel.train_button, Qt.MouseButton.LeftButton)
    job = widget.state.train_job
    qtbot.waitUntil(lambda: job.trainer is not None, timeout=30_000)
    # the trainer got the dask array itself, read block by block
    assert not job.trainer.source.in_memory
    assert isinstance(job.trainer.source._arr, da.Array)
    qtbot.waitUntil(lambda: not widget.state.training, timeout=60_000)
    model = widget.state.model
    assert model is not None
    assert model.step == 6

    out = tmp_path / "denoised.zarr"
    widget.denoise_panel.zarr_out = str(out)
    qtbot.mouseClick(widget.denoise_panel.denoise_button, Qt.MouseButton.LeftButton)
    assert widget.state.denoising
    qtbot.waitUntil(lambda: not widget.state.denoising, timeout=60_000)
    assert "stored in" in widget.state.message.text(), widget.state.message.text()
    result = viewer.layers["lazy [denoised]"]
    assert isinstance(result.data, da.Array)  # lazily loaded, not numpy
    stored = engine.open_result(str(out))
    # the store is an OME-Zarr image with the layer's pixel size, as any reader sees it
    assert engine.read_image(out)[1] == {"axes": "ZYX", "scale": [2.0, 0.5, 0.25], "unit": "µm"}
    ome = dict(zarr.open_group(str(out), mode="r").attrs)["ome"]["multiscales"][0]
    assert ome["datasets"][0]["coordinateTransformations"][0]["scale"] == [2.0, 0.5, 0.25]
    np.testing.assert_array_equal(result.data.compute(), stored[:])
    expected = engine.denoise(model, values, axes="ZYX", device="cpu")
    np.testing.assert_allclose(result.data.compute(), expected, rtol=1e-4, atol=1e-2)
    np.testing.assert_allclose(result.scale, layer.scale)
    np.testing.assert_allclose(result.translate, layer.translate)
    assert tuple(result.axis_labels) == ("z", "y", "x")
    assert [str(u) for u in result.units] == [str(u) for u in layer.units]
    np.testing.assert_allclose(result.contrast_limits, (500, 1500))
    assert widget.state.progress.value() == widget.state.progress.maximum() > 0
    # the layer, added when the store was created (all zeros), was refreshed as blocks landed
    z = round(layer.world_to_data(viewer.dims.point)[0])
    np.testing.assert_array_equal(result._slice.image.raw, stored[z])
    assert np.abs(stored[z]).max() > 0
    # the input layer still holds the very same dask array, unchanged
    assert layer.data is lazy
    np.testing.assert_array_equal(lazy.compute(), values)


def test_stop_a_zarr_denoise_and_resume(viewer_widget, qtbot, tmp_path):
    viewer, widget = viewer_widget
    lazy, values = zarr_stack(tmp_path, 16)  # 16 blocks, 4 network batches
    layer = viewer.add_image(lazy, name="lazy")
    model = engine.train(values, "ZYX", engine.TrainConfig.from_preset(
        "fast", steps=2, width=4, depth=2, patch_size=32, batch_size=2, net_dims="2d"),
        device="cpu")
    widget.state.set_model(model)
    out = tmp_path / "resumed.zarr"
    widget.denoise_panel.zarr_out = str(out)
    widget.settings_panel.device.setCurrentIndex(widget.settings_panel.device.findData("cpu"))

    # click Stop as soon as the first block is written (the engine stops before the next batch)
    def stop_after_first_block(step):
        if step.written == 1:
            qtbot.mouseClick(widget.training_panel.stop_button, Qt.MouseButton.LeftButton)

    qtbot.mouseClick(widget.denoise_panel.denoise_button, Qt.MouseButton.LeftButton)
    widget.state.job("denoise").worker.yielded.connect(stop_after_first_block)
    qtbot.waitUntil(lambda: not widget.state.denoising, timeout=60_000)
    assert "Stopped" in widget.state.message.text(), widget.state.message.text()
    state = dict(engine.open_result(str(out)).attrs)["napari_gr2r"]
    written, total = state["blocks_done"], widget.state.progress.maximum()
    assert 1 <= written < total
    assert "lazy [denoised]" in viewer.layers  # the partial result stays browsable

    steps = []
    qtbot.mouseClick(widget.denoise_panel.denoise_button, Qt.MouseButton.LeftButton)
    widget.state.job("denoise").worker.yielded.connect(steps.append)
    qtbot.waitUntil(lambda: not widget.state.denoising, timeout=60_000)
    assert "stored in" in widget.state.message.text(), widget.state.message.text()
    assert steps[0].skipped == written  # the finished blocks were not denoised again
    assert sum(s.written > 0 for s in steps) == total - written
    expected = engine.denoise(model, values, axes="ZYX", device="cpu")
    result = viewer.layers["lazy [denoised]"]
    assert isinstance(result.data, da.Array)
    np.testing.assert_allclose(result.data.compute(), expected, rtol=1e-4, atol=1e-2)
    assert layer.data is lazy

    # another model's result is not written over
    other = engine.train(values, "ZYX", model.config.replace(seed=1), device="cpu")
    widget.state.set_model(other)
    qtbot.mouseClick(widget.denoise_panel.denoise_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not widget.state.denoising, timeout=60_000)
    assert "another model" in widget.state.message.text(), widget.state.message.text()
    np.testing.assert_allclose(engine.open_result(str(out))[:], expected, rtol=1e-4,
                               atol=1e-2)


def test_multiscale_layer_denoises_its_full_resolution(viewer_widget, qtbot, lazy_stack,
                                                       tmp_path):
    viewer, widget = viewer_widget
    lazy, values = lazy_stack
    pyramid = [lazy, lazy[:, ::2, ::2]]
    layer = viewer.add_image(pyramid, name="pyramid", multiscale=True,
                             contrast_limits=(500, 1500))
    assert is_large(layer)
    model = engine.train(values, "ZYX", engine.TrainConfig.from_preset(
        "fast", steps=2, width=4, depth=2, patch_size=32, batch_size=2, net_dims="2d"),
        device="cpu")
    widget.state.set_model(model)
    widget.settings_panel.device.setCurrentIndex(widget.settings_panel.device.findData("cpu"))
    widget.denoise_panel.zarr_out = str(tmp_path / "pyramid.zarr")
    qtbot.mouseClick(widget.denoise_panel.denoise_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not widget.state.denoising, timeout=60_000)
    result = viewer.layers["pyramid [denoised]"]
    assert not result.multiscale
    assert result.data.shape == values.shape
    np.testing.assert_allclose(result.data.compute(),
                               engine.denoise(model, values, axes="ZYX", device="cpu"),
                               rtol=1e-4, atol=1e-2)
    assert layer.data[0] is lazy


def test_a_large_planes_result_becomes_multiscale_when_done(viewer_widget, qtbot, tmp_path,
                                                            monkeypatch):
    """A result whose planes are large (here above 128 pixels on a side) is shown, once its
    lower-resolution levels are written, as one multiscale layer: napari reads the level the
    view needs instead of the whole plane."""
    from tests.helpers import tiny_model

    from napari_gr2r.engine.io import pyramid

    monkeypatch.setattr(pyramid, "PYRAMID_MIN", 128)
    monkeypatch.setattr(pyramid, "PYRAMID_TOP", 64)
    viewer, widget = viewer_widget
    lazy, _ = zarr_stack(tmp_path, 2)
    viewer.add_image(lazy, name="lazy", scale=(1.0, 0.5, 0.5), units=("µm", "µm", "µm"))
    widget.state.set_model(tiny_model(axes="ZYX"))
    widget.settings_panel.device.setCurrentIndex(widget.settings_panel.device.findData("cpu"))
    out = tmp_path / "denoised.zarr"
    widget.denoise_panel.zarr_out = str(out)
    widget.denoise_panel.start()
    qtbot.waitUntil(lambda: not widget.state.denoising, timeout=60_000)
    result = viewer.layers["lazy [denoised]"]
    assert result.multiscale
    assert [tuple(level.shape) for level in result.data] == [(2, 256, 256), (2, 128, 128),
                                                             (2, 64, 64)]
    np.testing.assert_allclose(result.scale, (1.0, 0.5, 0.5))
    np.testing.assert_array_equal(np.asarray(result.data[1]),
                                  pyramid.halve(engine.open_result(str(out))[:]))
    assert "stored in" in widget.state.message.text()
    # opened again later as a result file (a folder run's): multiscale too
    from napari_gr2r._qt._results import open_result_file

    (opened,) = open_result_file(viewer, str(out))
    assert opened.multiscale
    assert len(opened.data) == 3
    np.testing.assert_allclose(opened.scale, (1.0, 0.5, 0.5))
