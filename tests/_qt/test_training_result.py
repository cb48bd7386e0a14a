"""Train ends in a result layer; the autosave in the user's cache folder is offered back after a
crash; the menu commands can be cancelled from napari's activity dock."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from qtpy.QtCore import Qt
from tests.helpers import shrink_widget

from napari_gr2r import engine
from napari_gr2r._qt import _autosave
from napari_gr2r.sample_data import load_sample

PLUGIN, WIDGET = "napari-gr2r", "GR2R Denoise"


@pytest.fixture(scope="module")
def nuclei():
    noisy, clean, _ = load_sample("nuclei2d")
    return noisy[:96, :96], clean[:96, :96]


@pytest.fixture
def viewer_widget(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    return viewer, widget


def _autosaves():
    folder = _autosave.autosave_dir()
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_stopped_training_ends_in_a_result_layer_replacing_the_preview(viewer_widget, qtbot,
                                                                        nuclei):
    viewer, widget = viewer_widget
    noisy, _ = nuclei
    layer = viewer.add_image(noisy, name="nuclei", scale=(0.5, 0.5))
    shrink_widget(widget, steps=5000, lr=3e-3, preview_every=10)
    assert widget.training_panel.result_layer.isChecked()  # on by default
    qtbot.mouseClick(widget.training_panel.train_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "nuclei [preview]" in viewer.layers, timeout=60_000)
    notes = _autosaves()  # the run is autosaved in the cache folder while it trains
    assert len(notes) == 1
    assert notes[0].startswith(f"autosave-{os.getpid()}-")
    qtbot.mouseClick(widget.training_panel.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not widget.state.training, timeout=60_000)
    model = widget.state.model
    assert model.step < 5000
    assert "nuclei [denoised]" in viewer.layers
    assert "nuclei [preview]" not in viewer.layers  # replaced by the result
    result = viewer.layers["nuclei [denoised]"]
    assert tuple(result.scale) == (0.5, 0.5)
    expected = engine.denoise(model, noisy, "YX", device="cpu")  # the kept best weights
    np.testing.assert_allclose(result.data, expected, rtol=1e-4, atol=1e-3)
    assert "Stopped" in widget.state.message.text()
    assert "into 'nuclei [denoised]'" in widget.state.message.text()
    np.testing.assert_array_equal(layer.data, noisy)
    assert _autosaves() == []  # a run that ended leaves nothing to offer


def test_no_result_layer_when_the_option_is_off(viewer_widget, qtbot, nuclei):
    viewer, widget = viewer_widget
    viewer.add_image(nuclei[0], name="nuclei")
    shrink_widget(widget, steps=20)
    widget.training_panel.result_layer.setChecked(False)
    qtbot.mouseClick(widget.training_panel.train_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not widget.state.training, timeout=60_000)
    assert widget.state.model.step == 20
    assert [lay.name for lay in viewer.layers] == ["nuclei"]
    assert "Finished at step 20" in widget.state.message.text()


_CRASH = textwrap.dedent("""
    import os, signal
    import numpy as np
    from napari_gr2r import engine
    from napari_gr2r._qt import _autosave
    path = _autosave.new_autosave("nuclei")
    image = np.random.default_rng(0).normal(100, 20, (64, 64)).astype(np.float32)
    config = engine.TrainConfig.from_preset("fast", steps=400, width=4, depth=1, patch_size=16,
                                            batch_size=2, checkpoint_every=5)
    for event in engine.Trainer(image, "YX", config, device="cpu",
                                checkpoint_path=path).iter_fit():
        if isinstance(event, engine.CheckpointSaved):
            os.kill(os.getpid(), signal.SIGKILL)  # napari crashes mid-training
""")


def test_an_autosave_left_by_a_crash_is_offered_and_loads(make_napari_viewer, qtbot):
    crash = subprocess.run([sys.executable, "-c", _CRASH], capture_output=True, text=True,
                           timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert crash.returncode == -9, crash.stderr
    assert len(_autosaves()) == 2  # the model file and its note
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    assert widget.training_panel.autosave_offer.isVisibleTo(widget)
    text = widget.training_panel.autosave_label.text()
    assert "Training on 'nuclei'" in text
    assert "interrupted at step 5 of 400" in text
    assert widget.state.model is None
    qtbot.mouseClick(widget.training_panel.autosave_load, Qt.MouseButton.LeftButton)
    assert widget.state.model is not None
    assert widget.state.model.step == 5
    assert "autosaved model of 'nuclei'" in widget.state.message.text()
    assert not widget.training_panel.autosave_offer.isVisibleTo(widget)
    assert _autosaves() == []
    # a later widget has nothing to offer
    _, again = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET, tabify=True)
    assert not again.training_panel.autosave_offer.isVisibleTo(again)


def _cancel_buttons(viewer, layer_names=("dock cells", "big")):
    """The Cancel buttons of the activity dock's running bars for this test's layers, by their
    description (the dock also shows bars that other code opens while the test runs)."""
    from napari._qt.widgets.qt_progress_bar import QtLabeledProgressBar
    from napari.utils import progress

    bars = viewer.window._qt_window.findChildren(QtLabeledProgressBar)
    return {bar.description_label.text(): bar.cancel_button for bar in bars
            if bar.progress in progress._all_instances and bar.cancel_button.isVisibleTo(bar)
            and any(f" {name}" in bar.description_label.text() for name in layer_names)}


def _menu_action(viewer, title):
    from tests._qt.test_menu_sample import menu_action

    return menu_action(viewer.window.layers_menu, "Filter", "Denoise", title)


def test_menu_commands_cancel_from_the_activity_dock(make_napari_viewer, qtbot, monkeypatch,
                                                     tmp_path, nuclei):
    from napari.utils.notifications import notification_manager

    import napari_gr2r._menu as menu_module

    monkeypatch.setattr(menu_module, "one_click_config", lambda: engine.TrainConfig.from_preset(
        "fast", steps=5000, width=4, depth=1, patch_size=16, batch_size=2))
    viewer = make_napari_viewer()
    viewer.add_image(nuclei[0], name="dock cells")
    # training: Cancel stops it after the step and denoises with the best weights so far
    _menu_action(viewer, "Train GR2R and denoise").trigger()
    buttons = _cancel_buttons(viewer)
    assert list(buttons) == ["GR2R: training on dock cells: "]
    qtbot.mouseClick(buttons["GR2R: training on dock cells: "], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "dock cells [denoised]" in viewer.layers, timeout=60_000)
    trained = viewer.layers["dock cells [denoised]"].metadata["gr2r"]["model"]
    steps = int(trained.split("step=")[1].rstrip(")"))
    assert steps < 5000
    qtbot.waitUntil(lambda: not _cancel_buttons(viewer), timeout=60_000)
    del viewer.layers["dock cells [denoised]"]

    # denoising with a saved model: Cancel ends it without a result
    model = engine.train(nuclei[0], "YX", engine.TrainConfig.from_preset(
        "fast", steps=2, width=4, depth=1, patch_size=16, batch_size=2), device="cpu")
    path = tmp_path / "m.gr2r.pt"
    engine.save_model(model, path)
    monkeypatch.setattr(menu_module.QFileDialog, "getOpenFileName",
                        staticmethod(lambda *args, **kwargs: (str(path), "")))
    viewer.add_image(np.random.default_rng(0).random((2048, 2048), np.float32), name="big")
    start = len(notification_manager.records)
    _menu_action(viewer, "Denoise with saved model…").trigger()
    buttons = _cancel_buttons(viewer)
    qtbot.mouseClick(buttons["GR2R: denoising big: "], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not _cancel_buttons(viewer), timeout=60_000)
    messages = [str(n.message) for n in notification_manager.records[start:]]
    assert "GR2R: cancelled; no result for 'big'." in messages
    assert "big [denoised]" not in viewer.layers
