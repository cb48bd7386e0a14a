"""The bad-input battery in the widget (see tests/test_bad_runs.py): a result the model may get
wrong is said to be so, and SIGTERM ends a training run as Stop does."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
from napari.utils.notifications import NotificationSeverity, notification_manager
from qtpy.QtCore import Qt
from tests.helpers import shrink_widget, tiny_model

from napari_gr2r import engine
from napari_gr2r._qt import _autosave

PLUGIN, WIDGET = "napari-gr2r", "GR2R Denoise"


@pytest.fixture
def viewer_widget(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    return viewer, widget


@pytest.fixture
def notifications():
    """The notifications napari shows while the test runs."""
    shown: list = []
    notification_manager.notification_ready.connect(shown.append)
    yield shown
    notification_manager.notification_ready.disconnect(shown.append)


def test_denoising_data_outside_the_models_range_is_warned_about(viewer_widget, qtbot, tmp_path,
                                                                  notifications):
    viewer, widget = viewer_widget
    engine.save_model(tiny_model(), tmp_path / "m.gr2r.pt")  # trained range 100..1100
    far = np.random.default_rng(0).integers(-128, 128, (48, 48), dtype=np.int8)
    viewer.add_image(far, name="int8")
    widget.denoise_panel.load_model(str(tmp_path / "m.gr2r.pt"))
    widget.denoise_panel.start()
    qtbot.waitUntil(lambda: "int8 [denoised]" in viewer.layers and not widget.state.denoising,
                    timeout=30_000)
    message = widget.state.message.text()
    assert message.startswith("Denoised 'int8' into 'int8 [denoised]'.")
    assert "Warning: The image's values (" in message
    assert "outside the range the model was trained on (100 to 1100)" in message
    warned = [n for n in notifications if n.severity == NotificationSeverity.WARNING]
    assert any("outside the range the model was trained on" in n.message for n in warned)
    # data in the model's range: no warning
    viewer.add_image(np.full((48, 48), 600, np.uint16), name="fine")
    widget.data_panel.layer_combo.setCurrentText("fine")
    widget.denoise_panel.start()
    qtbot.waitUntil(lambda: "fine [denoised]" in viewer.layers and not widget.state.denoising,
                    timeout=30_000)
    assert widget.state.message.text() == "Denoised 'fine' into 'fine [denoised]'."


def test_data_outside_the_models_range_is_warned_about_block_by_block_and_file_by_file(
        viewer_widget, qtbot, tmp_path, notifications):
    import dask.array as da
    import tifffile

    from napari_gr2r._qt._files_panel import FilesPanel

    viewer, widget = viewer_widget
    model = tiny_model()  # trained range 100..1100
    widget.state.set_model(model)
    far = np.random.default_rng(0).integers(-128, 128, (48, 48), dtype=np.int8)
    viewer.add_image(da.from_array(far, chunks=24), name="lazy int8")  # denoised into zarr
    widget.denoise_panel.zarr_out = str(tmp_path / "far.zarr")
    widget.denoise_panel.start()
    qtbot.waitUntil(lambda: "lazy int8 [denoised]" in viewer.layers and
                    not widget.state.denoising, timeout=30_000)
    message = widget.state.message.text()
    assert message.startswith("Denoised 'lazy int8' into 'lazy int8 [denoised]', stored in")
    assert "Warning: The image's values (" in message
    warned = [n for n in notifications if n.severity == NotificationSeverity.WARNING]
    assert sum("outside the range the model was trained on" in n.message for n in warned) == 1

    # a folder: the list marks the file, and the summary says its result may be wrong
    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "far.tif", far)
    tifffile.imwrite(folder / "fine.tif", np.full((48, 48), 600, np.uint16))
    panel = FilesPanel(widget.state)
    qtbot.addWidget(panel)
    panel.open_results.setChecked(False)
    panel.add_paths([str(folder)])
    panel.set_output(str(tmp_path / "out"))
    panel.run_button.click()
    qtbot.waitUntil(lambda: not panel.running, timeout=60_000)
    lines = [panel.log.item(i).text() for i in range(panel.log.count())]
    at = next(i for i, line in enumerate(lines) if line.startswith("✓ far.tif"))
    assert lines[at + 1].startswith("  ⚠ far.tif's values"), lines
    assert not any("fine.tif's values" in line for line in lines)
    assert "2 denoised, 1 may be wrong" in panel.message.text()
    assert "training range: far.tif" in panel.message.text()
    assert panel.files_progress.format() == "done, with warnings"


def test_sigterm_while_the_widget_trains_stops_like_stop(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    noisy = np.random.default_rng(1).uniform(100, 1100, (64, 64)).astype(np.float32)
    viewer.add_image(noisy, name="img")
    shrink_widget(widget, steps=100_000, width=4, batch=2, net_dims="2d")
    caught: list[int] = []
    # stands in for the default (which would end the test process) and must be back after
    before = signal.signal(signal.SIGTERM, lambda signum, frame: caught.append(signum))
    try:
        widget.training_panel.start()
        assert widget.state.training
        autosave = widget.training_panel._autosave
        qtbot.waitUntil(lambda: len(widget.training_panel.loss_plot.points("loss")) >= 2,
                        timeout=60_000)
        os.kill(os.getpid(), signal.SIGTERM)
        qtbot.waitUntil(lambda: not widget.state.busy, timeout=30_000)
        handler_after = signal.getsignal(signal.SIGTERM)
    finally:
        fallback = signal.signal(signal.SIGTERM, before)
    assert caught == []  # the widget's handler took it, not the one before
    assert handler_after is fallback  # and put the one before back when the run ended
    model = widget.state.model
    assert model is not None
    assert 0 < model.step < 100_000
    assert "img [denoised]" in viewer.layers  # as after Stop: the best weights denoise it
    assert "Stopped at step" in widget.state.message.text()
    assert "Stopped by SIGTERM" in widget.state.message.text()
    # the best weights are also in the autosave, which the next widget offers back
    assert autosave is not None
    assert autosave.exists()
    saved = engine.load_model(autosave)
    assert saved.best_step == model.best_step
    _autosave.discard(autosave)


def test_hot_pixels_replaced_are_said_in_memory_and_block_by_block(viewer_widget, qtbot, tmp_path,
                                                                  notifications):
    import dask.array as da

    viewer, widget = viewer_widget
    widget.state.set_model(tiny_model())  # trained range 100..1100
    image = np.random.default_rng(0).normal(600, 20, (48, 48)).astype(np.float32)
    image[[10, 20, 30], [12, 25, 33]] = 60000
    viewer.add_image(image, name="hot")
    widget.denoise_panel.start()
    qtbot.waitUntil(lambda: "hot [denoised]" in viewer.layers and not widget.state.denoising,
                    timeout=30_000)
    assert viewer.layers["hot [denoised]"].data.max() < 1100
    viewer.add_image(da.from_array(image, chunks=24), name="lazy hot")
    widget.data_panel.layer_combo.setCurrentText("lazy hot")
    widget.denoise_panel.zarr_out = str(tmp_path / "hot.zarr")
    widget.denoise_panel.start()
    qtbot.waitUntil(lambda: "lazy hot [denoised]" in viewer.layers and
                    not widget.state.denoising, timeout=30_000)
    said = [n.message for n in notifications if n.severity == NotificationSeverity.INFO]
    assert sum(m.startswith("3 isolated pixels far above or below all their neighbours")
               for m in said) == 2


def test_hot_pixels_are_kept_when_the_box_is_unticked(viewer_widget, qtbot, notifications,
                                                      tmp_path):
    viewer, widget = viewer_widget
    image = np.random.default_rng(1).normal(600, 20, (64, 64)).astype(np.float32)
    image[[10, 20, 40], [12, 45, 33]] = 60000
    viewer.add_image(image, name="hot")
    settings = widget.settings_panel
    assert settings.hot_pixels.isChecked()  # the engine's default
    settings.hot_pixels.setChecked(False)
    settings.start_prior.setChecked(False)
    settings.width.setValue(4)
    settings.steps.setValue(10)
    assert settings.config().hot_pixels is False
    widget.training_panel.result_layer.setChecked(True)
    qtbot.mouseClick(widget.training_panel.train_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "hot [denoised]" in viewer.layers and not widget.state.training
                    and not widget.state.denoising, timeout=60_000)
    assert widget.state.model.config.hot_pixels is False
    said = [n.message for n in notifications if n.severity == NotificationSeverity.INFO]
    assert not any("isolated pixels" in m for m in said)
    # a model trained with the replacement ticks the box again when loaded
    engine.save_model(tiny_model(), tmp_path / "m.gr2r.pt")
    widget.denoise_panel.load_model(str(tmp_path / "m.gr2r.pt"))
    assert settings.hot_pixels.isChecked()
