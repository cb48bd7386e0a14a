"""The widget's settings for neighbouring planes, precision and compilation, and the noise from a
calibration: each one reaches the engine (the trained model or the estimate records it)."""

from __future__ import annotations

import numpy as np
import pytest
from tests.helpers import blobs, shrink_widget

from napari_gr2r import engine

PLUGIN, WIDGET = "napari-gr2r", "GR2R Denoise"
SD = 20.0


@pytest.fixture
def viewer_widget(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    widget.noise_panel.after_training.setChecked(False)  # each test assesses when it asks
    return viewer, widget


def _noisy(shape: tuple[int, ...], seed: int = 0, sd: float = SD) -> np.ndarray:
    """Blobs (the same field in every plane) with independent Gaussian noise per plane."""
    rng = np.random.default_rng(seed)
    clean = blobs(shape[-1], 8, np.random.default_rng(1))
    return (clean + rng.normal(0, sd, shape)).astype(np.float32)


def _choose(widget, layer, axes: str) -> None:
    widget.data_panel.layer_combo.setCurrentText(layer.name)
    widget.data_panel.axes_edit.setText(axes)
    assert widget.state.axes_ok, widget.data_panel.axes_message.text()


def _train(widget, qtbot) -> tuple[engine.GR2RModel, list[str]]:
    """Train with the widget's settings; the model and the messages shown meanwhile."""
    state = widget.state
    shown: list[str] = []
    show = state.show_message

    def recording(text: str, error: bool = False) -> None:
        shown.append(text)
        show(text, error)

    state.show_message = recording
    widget.training_panel.result_layer.setChecked(False)
    widget.training_panel.train_button.click()
    qtbot.waitUntil(lambda: not state.training, timeout=60_000)
    state.show_message = show
    assert state.model is not None, state.message.text()
    return state.model, shown


def test_neighbouring_planes_follow_the_layer_and_reach_the_model(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    settings = widget.settings_panel
    assert settings.context.value() == engine.TrainConfig().context == 0
    assert "0 = off" in settings.context_hint.text()
    assert settings.context.toolTip()
    plane = viewer.add_image(_noisy((64, 64)), name="plane")
    _choose(widget, plane, "YX")
    assert not settings.context.isEnabled()
    assert "no T or Z axis" in settings.context_hint.text()
    stack = viewer.add_image(_noisy((6, 64, 64)), name="stack")
    _choose(widget, stack, "ZYX")
    settings.net_dims.setCurrentText("3d")
    assert not settings.context.isEnabled()
    assert "3D network" in settings.context_hint.text()
    settings.net_dims.setCurrentText("auto")
    assert settings.context.isEnabled()
    assert "Z slices" in settings.context_hint.text()
    movie = viewer.add_image(_noisy((6, 64, 64)), name="movie")
    _choose(widget, movie, "TYX")
    assert settings.context.isEnabled()
    assert "time points (T)" in settings.context_hint.text()
    shrink_widget(widget, steps=4)
    settings.context.setValue(2)
    model, shown = _train(widget, qtbot)
    assert model.config.context == 2
    first = next(p for p in model.net.parameters() if p.ndim > 1)
    assert first.shape[1] == 5  # the plane and two on each side, as input channels
    assert any("2 neighbouring plane(s) on each side" in text for text in shown)
    settings.set_context(0)
    viewer.layers.selection.active = movie
    settings._on_model_loaded(model)  # loading a model shows its planes
    assert settings.context.value() == 2
    settings.context.setValue(-1)
    assert settings.context.text() == "auto"
    assert settings.config().context == "auto"


def test_precision_and_compile_reach_the_engine_and_fp16_on_a_cpu_is_refused(viewer_widget,
                                                                              qtbot):
    viewer, widget = viewer_widget
    settings = widget.settings_panel
    assert settings.precision.currentData() == engine.TrainConfig().precision == "auto"
    assert "CUDA" in settings.precision.toolTip()
    assert "torch.compile" in settings.compile.text()
    assert not settings.compile.isChecked()
    layer = viewer.add_image(_noisy((64, 64)), name="plane")
    _choose(widget, layer, "YX")
    shrink_widget(widget, steps=4)
    settings.compile.setChecked(True)
    assert settings.config().compile is True
    settings.compile.setChecked(False)
    settings.precision.setCurrentIndex(settings.precision.findData("fp16"))
    widget.training_panel.train_button.click()
    qtbot.waitUntil(lambda: not widget.state.training, timeout=60_000)
    assert widget.state.model is None
    assert "fp16" in widget.state.message.text()
    assert "CUDA" in widget.state.message.text()
    assert "Traceback" not in widget.state.message.text()
    settings.precision.setCurrentIndex(settings.precision.findData("bf16"))
    model, shown = _train(widget, qtbot)
    assert model.config.precision == "bf16"
    assert model.config.compile is False
    assert any(" at bf16" in text for text in shown)


def test_an_ensemble_is_trained_and_shown_from_the_widget(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    settings = widget.settings_panel
    assert settings.preset.currentText() == "fast"
    assert settings.members.value() == engine.TrainConfig.from_preset("fast").members == 1
    assert "average" in settings.members.toolTip()
    # fast starts from the prior, and the learning rate field shows the prior's rate
    assert settings.start_prior.isChecked()
    assert settings.lr.value() == pytest.approx(2e-4)
    config = settings.config()
    assert (config.start, config.peak_lr) == ("prior", pytest.approx(2e-4))
    settings.start_prior.setChecked(False)
    assert settings.lr.value() == pytest.approx(2e-3)
    assert (settings.config().start, settings.config().peak_lr) == ("scratch", pytest.approx(2e-3))
    settings.preset.setCurrentText("balanced")  # four of fast's networks, from their priors
    assert (settings.members.value(), settings.width.value()) == (4, 16)
    assert settings.start_prior.isChecked()
    layer = viewer.add_image(_noisy((64, 64)), name="plane")
    _choose(widget, layer, "YX")
    shrink_widget(widget, steps=4)
    settings.members.setValue(3)
    model, shown = _train(widget, qtbot)
    assert model.config.members == 3
    assert len(model.net.members) == 3
    assert any("an ensemble of 3 2D networks" in text for text in shown)
    settings.preset.setCurrentText("quality")  # a preset sets one network again
    assert settings.members.value() == 1


def _calibration(tmp_path) -> tuple[engine.NoiseCalibration, str]:
    cal = engine.calibrate_noise(_noisy((4, 64, 64), seed=5), "TYX")
    path = tmp_path / "camera.noise.json"
    cal.save(path)
    return cal, str(path)


def test_a_calibration_file_feeds_training_and_the_estimate(viewer_widget, qtbot, tmp_path):
    viewer, widget = viewer_widget
    cal, path = _calibration(tmp_path)
    source = widget.noise_panel.noise_source
    assert source.source.currentData() == "fit"
    assert widget.state.noise is None
    assert not source.details.isVisibleTo(widget)
    bad = tmp_path / "not.json"
    bad.write_text("{}")
    assert not source.load_file(bad)
    assert "not a noise calibration" in widget.state.message.text()
    assert source.load_file(path)
    assert source.source.currentData() == "calibration"
    assert widget.state.noise is source.calibration
    assert source.calibration.gain == pytest.approx(cal.gain)
    assert "camera.noise.json" in source.label.text()
    layer = viewer.add_image(_noisy((96, 96), seed=9), name="plane")
    _choose(widget, layer, "YX")
    shrink_widget(widget, steps=4)
    model, shown = _train(widget, qtbot)
    assert model.noise_level.source == "calibration"
    assert any("from camera.noise.json" in text for text in shown)
    panel = widget.noise_panel
    panel.assess_button.click()
    qtbot.waitUntil(lambda: panel.view.report is not None and not widget.state.assessing,
                    timeout=60_000)
    noise = panel.view.report.noise
    assert noise.level.source == "calibration"
    assert noise.gain == pytest.approx(cal.gain, abs=1e-6)
    assert noise.offset == pytest.approx(cal.offset, rel=1e-4)
    assert "from the calibration" in panel.view.summary.text()
    source.source.setCurrentIndex(source.source.findData("fit"))
    assert widget.state.noise is None
    assert panel.view.report is None


def test_a_layer_of_captures_calibrates_and_moving_ones_are_refused(viewer_widget, qtbot,
                                                                    tmp_path):
    viewer, widget = viewer_widget
    source = widget.noise_panel.noise_source
    still = _noisy((4, 64, 64), seed=5)
    viewer.add_image(still, name="captures")
    moving = np.stack([np.roll(still[0], 3 * i, axis=1) for i in range(3)])
    viewer.add_image(moving, name="moving")
    source.source.setCurrentIndex(source.source.findData("calibration"))
    assert source.details.isVisibleTo(widget)
    assert widget.state.noise is None  # none loaded yet: the noise is fitted
    assert [source.captures.itemText(i) for i in range(source.captures.count())] == \
        ["captures", "moving"]
    viewer.add_image(still[:2], name="later")  # the list follows the layers when it opens
    source.captures.showPopup()
    source.captures.hidePopup()
    assert source.captures.findText("later") >= 0
    source.captures.setCurrentText("moving")
    source.calibrate_button.click()
    qtbot.waitUntil(lambda: widget.state.job("calibrate") is None, timeout=30_000)
    assert widget.state.noise is None
    assert "moves" in widget.state.message.text()
    source.captures.setCurrentText("captures")
    source.calibrate_button.click()
    qtbot.waitUntil(lambda: widget.state.noise is not None, timeout=30_000)
    expected = engine.calibrate_noise(still, "TYX")
    assert widget.state.noise.gain == pytest.approx(expected.gain)
    assert widget.state.noise.offset == pytest.approx(expected.offset)
    assert "4 captures" in source.label.text()
    source.save_file(tmp_path / "saved.json")
    assert engine.NoiseCalibration.load(tmp_path / "saved.json").offset == \
        pytest.approx(expected.offset)
    # a mean SD near the noise's: the captures hold Gaussian noise of that SD
    assert np.sqrt(widget.state.noise.variance(100.0)) == pytest.approx(SD, rel=0.1)
    # without a model, Assess draws the calibration over the chosen image
    plane = viewer.add_image(_noisy((64, 64), seed=7), name="plane")
    _choose(widget, plane, "YX")
    panel = widget.noise_panel
    panel.assess_button.click()
    qtbot.waitUntil(lambda: panel.view.noise is not None and not widget.state.assessing,
                    timeout=30_000)
    assert panel.view.noise.level.source == "calibration"
    assert panel.view.noise.gain == pytest.approx(expected.gain)
    assert "from the calibration" in panel.view.summary.text()
