"""The GR2R Denoise dock widget, end to end through the manifest."""

from __future__ import annotations

import time

import numpy as np
import pytest
from qtpy.QtCore import Qt
from tests.helpers import psnr, shrink_widget

from napari_gr2r import engine
from napari_gr2r._qt._jobs import ABANDON_WAIT_S
from napari_gr2r.sample_data import load_sample

PLUGIN, WIDGET = "napari-gr2r", "GR2R Denoise"
RNG = np.random.default_rng(0)


@pytest.fixture
def viewer_widget(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    return viewer, widget


def tiny(widget, steps: int = 60) -> None:
    """The fast preset shrunk to a network that trains in seconds on a CPU (and a high lr)."""
    shrink_widget(widget, steps, lr=3e-3)


@pytest.fixture(scope="module")
def nuclei_crop():
    noisy, clean, info = load_sample("nuclei2d")
    return noisy[:128, :128], clean[:128, :128], info


def test_widget_opens_through_manifest_and_lists_image_layers(viewer_widget):
    viewer, widget = viewer_widget
    assert widget.training_panel.train_button.text() == "Train"
    training, denoise = widget.training_panel, widget.denoise_panel
    labels = [b.text() for b in (training.train_button, training.stop_button, denoise.save_button,
                                 denoise.load_button, denoise.denoise_button)]
    assert labels == ["Train", "Stop", "Save model…", "Load model…", "Denoise"]
    assert widget.settings_panel.device.itemData(widget.settings_panel.device.count() - 1) == "cpu"
    assert not widget.training_panel.train_button.isEnabled()  # nothing to train on yet
    viewer.add_labels(np.zeros((32, 32), np.uint8), name="mask")
    viewer.add_shapes(name="outline")
    viewer.add_image(np.zeros((5, 32, 40), np.float32), name="stack")
    items = [widget.data_panel.layer_combo.itemText(i) for i in range(widget.data_panel.layer_combo.count())]
    assert items == ["stack"]
    assert widget.data_panel.axes_edit.text() == "ZYX"
    assert widget.training_panel.train_button.isEnabled()
    viewer.layers["stack"].name = "renamed"
    assert widget.data_panel.layer_combo.currentText() == "renamed"
    viewer.add_image(np.zeros((32, 32), np.float32), name="plane")
    assert widget.data_panel.layer_combo.currentText() == "renamed"  # the choice is kept
    widget.data_panel.layer_combo.setCurrentText("plane")
    assert widget.data_panel.axes_edit.text() == "YX"
    del viewer.layers["plane"]
    combo = widget.data_panel.layer_combo
    assert [combo.itemText(i) for i in range(combo.count())] == ["renamed"]


def test_axes_prefilled_from_labels_and_validated(viewer_widget):
    viewer, widget = viewer_widget
    layer = viewer.add_image(np.zeros((3, 4, 32, 32), np.float32), name="tc",
                             axis_labels=("t", "c", "y", "x"))
    widget.data_panel.layer_combo.setCurrentText(layer.name)
    assert widget.data_panel.axes_edit.text() == "TCYX"
    assert widget.training_panel.train_button.isEnabled()
    widget.data_panel.axes_edit.setText("ZYX")
    assert "4 dimensions" in widget.data_panel.axes_message.text()
    assert not widget.training_panel.train_button.isEnabled()
    widget.data_panel.axes_edit.setText("TCYXQ")
    assert "Unknown axis letter" in widget.data_panel.axes_message.text()
    widget.data_panel.axes_edit.setText("tcyx")
    assert widget.data_panel.axes_message.text().startswith("✓")


def test_bad_choices_are_rejected_with_messages(viewer_widget, qtbot, tmp_path):
    viewer, widget = viewer_widget
    # no layer
    widget.training_panel.start()
    assert "No image layer" in widget.state.message.text()
    # too small for one patch
    viewer.add_image(RNG.random((10, 40), np.float32), name="small")
    assert "too small" in widget.data_panel.axes_message.text()
    widget.training_panel.start()
    assert "too small" in widget.state.message.text()
    assert not widget.state.training
    # a setting the engine refuses: r2r needs the noise level
    viewer.add_image(RNG.random((40, 40), np.float32), name="plain")
    widget.data_panel.layer_combo.setCurrentText("plain")
    widget.settings_panel.set_method("r2r")
    widget.training_panel.start()
    assert "noise_sigma" in widget.state.message.text()
    assert not widget.state.training
    widget.settings_panel.set_method("gr2r")
    # RGB: supported through a C axis, rejected otherwise
    rgb = viewer.add_image(RNG.integers(0, 255, (40, 48, 3), np.uint8), name="rgb")
    assert rgb.rgb
    widget.data_panel.layer_combo.setCurrentText("rgb")
    assert widget.data_panel.axes_edit.text() == "YXC"
    assert widget.data_panel.axes_message.text().startswith("✓")
    widget.data_panel.axes_edit.setText("ZYX")
    assert "RGB" in widget.data_panel.axes_message.text()
    widget.training_panel.start()
    assert "RGB" in widget.state.message.text()
    assert "YXC" in widget.state.message.text()
    # a model trained on other channels
    gray = RNG.random((32, 32), np.float32)
    model = engine.train(gray, "YX", engine.TrainConfig.from_preset(
        "fast", steps=2, width=4, depth=1, patch_size=16, batch_size=2, val_fraction=0),
        device="cpu")
    path = tmp_path / "gray.gr2r.pt"
    engine.save_model(model, path)
    widget.data_panel.axes_edit.setText("YXC")
    widget.denoise_panel.load_model(str(path))
    assert "1 channel" in widget.state.message.text()
    widget.denoise_panel.start()
    assert "trained on 1 channel" in widget.state.message.text()
    assert "rgb [denoised]" not in viewer.layers
    # a damaged model file
    bad = tmp_path / "bad.gr2r.pt"
    bad.write_bytes(b"not a model")
    widget.denoise_panel.load_model(str(bad))
    assert "Could not load" in widget.state.message.text()


def test_train_stop_resume_denoise(viewer_widget, qtbot, nuclei_crop, tmp_path):
    viewer, widget = viewer_widget
    noisy, clean, _ = nuclei_crop
    layer = viewer.add_image(noisy, name="nuclei", scale=(0.2, 0.25), translate=(3.0, 4.0),
                             units=("µm", "µm"), axis_labels=("y", "x"))
    before = layer.data.copy()
    tiny(widget, steps=2000)
    widget.settings_panel.preview_every.setValue(20)
    widget.training_panel.result_layer.setChecked(False)  # the preview stays; Denoise makes the result here
    assert widget.data_panel.axes_edit.text() == "YX"

    qtbot.mouseClick(widget.training_panel.train_button, Qt.MouseButton.LeftButton)
    assert widget.state.training
    qtbot.waitUntil(lambda: any(s >= 100 for s, _ in widget.training_panel.loss_plot.points("loss")),
                    timeout=90_000)
    assert {"loss", "unsupervised"} <= set(widget.training_panel.loss_plot.names)
    assert "patches/s" in widget.state.progress.format()
    qtbot.mouseClick(widget.training_panel.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not widget.state.training, timeout=5_000)
    model = widget.state.model
    assert model is not None
    assert 100 <= model.step < 2000
    assert "Stopped" in widget.state.message.text()
    qtbot.waitUntil(lambda: "nuclei [preview]" in viewer.layers, timeout=5_000)
    preview = viewer.layers["nuclei [preview]"]
    assert preview.data.shape == noisy.shape
    assert tuple(preview.scale) == (0.2, 0.25)

    # Train again resumes from the kept weights
    stopped_at = model.step
    widget.settings_panel.steps.setValue(20)
    assert widget.training_panel.resume.isChecked()
    qtbot.mouseClick(widget.training_panel.train_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not widget.state.training, timeout=30_000)
    assert widget.state.model is model
    assert model.step == stopped_at + 20

    widget.data_panel.layer_combo.setCurrentText("nuclei")
    qtbot.mouseClick(widget.denoise_panel.denoise_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "nuclei [denoised]" in viewer.layers and not widget.state.denoising,
                    timeout=30_000)
    out = viewer.layers["nuclei [denoised]"]
    assert out.data.shape == noisy.shape
    np.testing.assert_allclose(out.scale, layer.scale)
    np.testing.assert_allclose(out.translate, layer.translate)
    assert tuple(out.axis_labels) == ("y", "x")
    assert [str(u) for u in out.units] == [str(u) for u in layer.units]
    np.testing.assert_allclose(out.contrast_limits, layer.contrast_limits)
    assert psnr(out.data, clean) > psnr(noisy, clean) + 1.0
    assert viewer.layers.selection.active is layer  # adding results keeps the selection
    np.testing.assert_array_equal(layer.data, before)  # the input is untouched

    # a second run replaces the result instead of piling up layers
    n_layers = len(viewer.layers)
    widget.data_panel.layer_combo.setCurrentText("nuclei")
    qtbot.mouseClick(widget.denoise_panel.denoise_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not widget.state.denoising, timeout=30_000)
    assert len(viewer.layers) == n_layers

    # save and load
    path = tmp_path / "nuclei.gr2r.pt"
    widget.denoise_panel.save_model(str(path))
    assert path.exists()
    widget.training_panel.loss_plot.clear()
    widget.denoise_panel.load_model(str(path))
    assert widget.state.model.step == model.step
    assert widget.training_panel.loss_plot.points("loss")  # the history is drawn again


def test_closing_the_viewer_stops_training(make_napari_viewer, qtbot, nuclei_crop):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    viewer.add_image(nuclei_crop[0], name="nuclei")
    tiny(widget, steps=100_000)
    widget.settings_panel.preview_every.setValue(0)
    qtbot.mouseClick(widget.training_panel.train_button, Qt.MouseButton.LeftButton)
    job, worker = widget.state.train_job, widget.state.train_job.worker
    qtbot.waitUntil(lambda: job.trainer is not None, timeout=30_000)
    started = time.perf_counter()
    viewer.close()
    assert job.stop_requested
    # closing waits for the run to end after its step, not for the wait's 5 s timeout
    assert job.wait(0)
    assert time.perf_counter() - started < ABANDON_WAIT_S
    qtbot.waitUntil(lambda: not worker.is_running, timeout=5_000)


def test_removing_the_widget_stops_training(viewer_widget, qtbot, nuclei_crop):
    viewer, widget = viewer_widget
    viewer.add_image(nuclei_crop[0], name="nuclei")
    tiny(widget, steps=100_000)
    qtbot.mouseClick(widget.training_panel.train_button, Qt.MouseButton.LeftButton)
    job, worker = widget.state.train_job, widget.state.train_job.worker
    dock = widget.parent()
    dock.setFloating(True)
    dock.close()  # hiding the panel, even floating, does not stop training
    assert not job.stop_requested
    started = time.perf_counter()
    viewer.window.remove_dock_widget(widget)
    assert job.stop_requested
    assert job.wait(0)  # the run ended after its step while the widget closed
    assert time.perf_counter() - started < ABANDON_WAIT_S
    qtbot.waitUntil(lambda: not worker.is_running, timeout=30_000)


def test_collapse_warning_and_progress_text(viewer_widget):
    """Engine events drawn by the widget (the handler the worker's yielded signal calls)."""
    _, widget = viewer_widget
    assert widget.training_panel.collapse_warning.isHidden()
    widget.training_panel.on_event(engine.TrainingProgress(
        step=30, total_steps=300, elapsed_s=3.0, loss=0.5, terms={"unsupervised": 0.4},
        val_loss=0.45, validated=True, patches_per_s=80.0, eta_s=125.0))
    assert widget.state.progress.format() == "step 30/300 · 80 patches/s · 2:05 left"
    assert widget.training_panel.loss_plot.points("val_loss") == [(30, 0.45)]
    widget.training_panel.on_event(engine.CollapseDetected(
        step=40, total_steps=300, elapsed_s=4.0, message="Training is collapsing onto the input"))
    assert not widget.training_panel.collapse_warning.isHidden()
    assert "collapsing" in widget.training_panel.collapse_warning.text()
