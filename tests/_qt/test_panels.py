"""Each panel of the GR2R widget on its own: one shared state, one panel, a real viewer."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import Qt
from tests.helpers import StubSettings

from napari_gr2r import engine
from napari_gr2r._qt._data_panel import DataPanel
from napari_gr2r._qt._denoise_panel import DenoisePanel
from napari_gr2r._qt._settings_panel import SettingsPanel
from napari_gr2r._qt._state import WidgetState
from napari_gr2r._qt._training_panel import TrainingPanel

RNG = np.random.default_rng(3)


def smallest_config(steps: int) -> engine.TrainConfig:
    """A width-4, depth-1 network: a panel's run in a fraction of a second."""
    return engine.TrainConfig.from_preset("fast", steps=steps, width=4, depth=1, patch_size=16,
                                          batch_size=2, val_fraction=0.0, net_dims="2d")


@pytest.fixture
def state(make_napari_viewer):
    return WidgetState(make_napari_viewer())


def test_data_panel_offers_image_layers_and_publishes_the_checked_axes(state):
    viewer = state.viewer
    panel = DataPanel(state)
    assert state.layer is None
    assert not state.axes_ok
    viewer.add_labels(np.zeros((32, 32), np.uint8), name="mask")
    stack = viewer.add_image(np.zeros((6, 40, 48), np.float32), name="stack")
    assert [panel.layer_combo.itemText(i) for i in range(panel.layer_combo.count())] == ["stack"]
    assert state.chosen_layer() is stack
    assert (state.axes, state.axes_ok) == ("ZYX", True)
    panel.axes_edit.setText("yx")
    assert not state.axes_ok
    assert "3 dimensions" in panel.axes_message.text()
    panel.axes_edit.setText("tyx")
    assert (state.axes, state.axes_ok) == ("TYX", True)
    del viewer.layers["stack"]
    assert state.chosen_layer() is None
    assert not state.axes_ok


def test_settings_panel_serves_the_chosen_configuration(state):
    panel = SettingsPanel(state)
    state.settings = panel
    panel.preset.setCurrentText("quality")
    quality = engine.TrainConfig.from_preset("quality")
    assert panel.steps.value() == quality.steps
    assert panel.width.value() == quality.width
    panel.set_method("gr2r-paper")
    panel.gamma.setValue(2.0)
    panel.seed.setValue(-1)  # "random"
    config = state.settings.config()
    assert (config.method, config.gamma, config.seed) == ("gr2r-paper", 2.0, None)
    assert config.steps == quality.steps
    panel.device.setCurrentIndex(panel.device.findData("cpu"))
    assert state.settings.device_id() == "cpu"
    # a loaded model shows its network's size
    model = engine.train(RNG.random((32, 32), np.float32), "YX", smallest_config(1), device="cpu")
    state.model_loaded.emit(model)
    assert (panel.width.value(), panel.depth.value()) == (4, 1)


def test_training_panel_trains_a_model_and_draws_its_losses(state, qtbot):
    state.settings = StubSettings(smallest_config(12))
    panel = TrainingPanel(state)
    assert not panel.train_button.isEnabled()  # no layer chosen
    layer = state.viewer.add_image(RNG.random((48, 48), np.float32), name="noisy")
    state.set_choice(layer, "YX", axes_ok=True)
    assert panel.train_button.isEnabled()
    qtbot.mouseClick(panel.train_button, Qt.MouseButton.LeftButton)
    assert state.training
    assert not panel.train_button.isEnabled()
    qtbot.waitUntil(lambda: not state.training, timeout=60_000)
    assert state.model is not None
    assert state.model.step == 12
    assert state.progress.format() == "done"  # then denoised into a result layer
    assert "Finished at step 12" in state.message.text()
    assert state.viewer.layers["noisy [denoised]"].data.shape == (48, 48)
    assert panel.loss_plot.points("loss")
    assert panel.resume.isChecked()  # Train again continues this model
    qtbot.mouseClick(panel.train_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not state.training, timeout=60_000)
    assert state.model.step == 24


def test_denoise_panel_denoises_into_a_layer_and_saves_and_loads(state, qtbot, tmp_path):
    viewer = state.viewer
    state.settings = StubSettings(smallest_config(1))
    panel = DenoisePanel(state)
    noisy = RNG.random((40, 40), np.float32)
    layer = viewer.add_image(noisy, name="noisy", scale=(0.5, 0.25))
    state.set_choice(layer, "YX", axes_ok=True)
    assert not panel.denoise_button.isEnabled()  # no model yet
    model = engine.train(noisy, "YX", smallest_config(3), device="cpu")
    state.set_model(model)
    assert panel.denoise_button.isEnabled()
    qtbot.mouseClick(panel.denoise_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "noisy [denoised]" in viewer.layers and not state.denoising,
                    timeout=30_000)
    out = viewer.layers["noisy [denoised]"]
    np.testing.assert_allclose(out.data, engine.denoise(model, noisy, axes="YX", device="cpu"),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out.scale, layer.scale)
    assert state.progress.format() == "done"

    path = tmp_path / "tiny.gr2r.pt"
    panel.save_model(str(path))
    assert path.exists()
    loaded = []
    state.model_loaded.connect(loaded.append)
    panel.load_model(str(path))
    assert state.model is not model
    assert state.model.step == model.step == 3
    assert loaded == [state.model]
    assert state.message.text() == f"Loaded {path}."


def test_the_started_line_suggests_a_calibration_only_for_fitted_correlated_noise():
    from napari_gr2r._qt._training_panel import started_text

    def started(correlation, source="fit"):
        return engine.TrainingStarted(step=0, total_steps=10, elapsed_s=0.0, noise_sd=3.0,
                                      noise_correlation=correlation, n_parameters=10,
                                      noise_source=source)

    assert "repeated captures of a still field" in started_text(started(0.6))
    # a calibration chosen now, or the one a model being continued was trained with
    calibrated = started(0.6, "calibration")
    assert "repeated captures" not in started_text(calibrated, noise_from="camera.noise.json")
    assert "repeated captures" not in started_text(calibrated)
    assert "repeated captures" not in started_text(started(0.0))
