"""Denoise files…: the panel runs the engine's many-files job in a worker on a temp folder."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from tests.helpers import tiny

from napari_gr2r import engine


@pytest.fixture(scope="module")
def small_model():
    rng = np.random.default_rng(0)
    noisy = rng.normal(100, 20, (48, 48)).astype(np.float32)
    return engine.train(noisy, "YX", tiny(steps=2, width=8), device="cpu")


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(1)
    raw = tmp_path / "raw"
    raw.mkdir()
    for i in range(3):
        tifffile.imwrite(raw / f"cell{i}.tif", rng.normal(100, 20, (40, 56)).astype(np.float32),
                         imagej=True, resolution=(1 / 0.5, 1 / 0.5), metadata={"unit": "um"})
    (raw / "broken.tif").write_bytes(b"this is not a TIFF")
    return raw


def test_denoise_files_panel_runs_on_a_folder(make_napari_viewer, qtbot, small_model, folder,
                                              tmp_path):
    from napari_gr2r._qt._files_panel import FilesPanel
    from napari_gr2r._qt._state import WidgetState

    viewer = make_napari_viewer()
    state = WidgetState(viewer)
    panel = FilesPanel(state)
    qtbot.addWidget(panel)
    assert not panel.run_button.isEnabled()  # nothing chosen yet
    panel.add_paths([str(folder)])
    panel.set_output(str(tmp_path / "out"))
    assert not panel.run_button.isEnabled()  # no model yet
    state.set_model(small_model)
    assert panel.run_button.isEnabled()
    panel.run_button.click()
    assert panel.running
    assert not panel.add_files_button.isEnabled()
    qtbot.waitUntil(lambda: not panel.running, timeout=120_000)

    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["cell0.tif", "cell1.tif", "cell2.tif"]
    lines = [panel.log.item(i).text() for i in range(panel.log.count())]
    assert any(line.startswith("✗ broken.tif") and "not a TIFF" in line for line in lines)
    assert sum(line.startswith("✓ cell") for line in lines) == 3
    assert "1 failed" in panel.message.text()
    assert "broken.tif" in panel.message.text()
    assert panel.files_progress.value() == 4
    # the results are open as layers, denoised, with the input's pixel size
    assert [layer.name for layer in panel.opened] == [f"cell{i} [denoised]" for i in range(3)]
    layer = viewer.layers["cell0 [denoised]"]
    noisy = tifffile.imread(folder / "cell0.tif")
    np.testing.assert_allclose(np.asarray(layer.data),
                               engine.denoise(small_model, noisy, "YX", device="cpu"), atol=1e-4)
    assert tuple(layer.scale) == (0.5, 0.5)

    # a second run skips what is done, and Stop is honoured before the next file
    panel.open_results.setChecked(False)
    panel.run_button.click()
    qtbot.waitUntil(lambda: not panel.running, timeout=60_000)
    lines = [panel.log.item(i).text() for i in range(panel.log.count())]
    assert sum("already done" in line for line in lines) == 3
    assert "3 already done" in panel.message.text()


def test_denoise_files_button_docks_the_panel_with_the_widgets_model(make_napari_viewer, qtbot,
                                                                     small_model, folder,
                                                                     tmp_path):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-gr2r", "GR2R Denoise")
    assert widget.denoise_panel.files_button.text() == "Denoise files…"
    widget.state.set_model(small_model)
    widget.denoise_panel.files_button.click()
    panel = widget.denoise_panel.files_panel
    assert panel is not None
    assert not panel.isHidden()
    # a tab of the widget, not a second dock
    assert "GR2R: denoise files" not in viewer.window.dock_widgets
    assert widget.tabs.currentWidget().widget() is panel
    widget.denoise_panel.files_button.click()  # once only
    assert widget.denoise_panel.files_panel is panel
    (folder / "broken.tif").unlink()
    panel.add_paths([str(folder / "cell0.tif"), str(folder / "cell1.tif")])
    panel.set_output(str(tmp_path / "res"))
    panel.open_results.setChecked(False)
    panel.run_button.click()
    qtbot.waitUntil(lambda: not panel.running, timeout=120_000)
    assert sorted(p.name for p in (tmp_path / "res").iterdir()) == ["cell0.tif", "cell1.tif"]
    assert panel.message.text().startswith("2 denoised")


def test_train_on_several_layers(make_napari_viewer, qtbot):
    from tests.helpers import shrink_widget

    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-gr2r", "GR2R Denoise")
    rng = np.random.default_rng(2)
    for name, shape in (("a", (48, 48)), ("b", (40, 56)), ("c", (64, 48))):
        viewer.add_image(rng.normal(100, 20, shape).astype(np.float32), name=name)
    viewer.add_image(rng.normal(100, 20, (3, 48, 48)).astype(np.float32), name="stack")
    widget.data_panel.layer_combo.setCurrentText("a")
    assert widget.data_panel.axes_edit.text() == "YX"
    assert not widget.data_panel.more_list.isVisible()
    widget.data_panel.several.setChecked(True)
    listed = [widget.data_panel.more_list.item(i).text() for i in range(widget.data_panel.more_list.count())]
    assert listed == ["b", "c"]  # the 3D stack does not have these axes
    widget.data_panel.set_more_layers(["b", "c"])
    assert [layer.name for layer in widget.state.training_layers()] == ["a", "b", "c"]
    shrink_widget(widget, steps=4)
    widget.training_panel.train_button.click()
    job = widget.state.train_job
    qtbot.waitUntil(lambda: not widget.state.training, timeout=120_000)
    assert job.trainer is not None
    assert len(job.trainer.images) == 3
    assert widget.state.model is not None
    assert widget.state.model.step == 4
    # unticking "Train on several layers" trains on the chosen layer alone again
    widget.data_panel.several.setChecked(False)
    assert [layer.name for layer in widget.state.training_layers()] == ["a"]


def test_results_open_with_units_and_a_second_run_does_not_reopen_them(make_napari_viewer, qtbot,
                                                                       small_model, folder,
                                                                       tmp_path):
    from napari_gr2r._qt._files_panel import FilesPanel
    from napari_gr2r._qt._state import WidgetState

    (folder / "broken.tif").unlink()
    state = WidgetState(make_napari_viewer())
    state.set_model(small_model)
    panel = FilesPanel(state)
    panel.add_paths([str(folder)])
    panel.set_output(str(tmp_path / "out"))
    panel.run_button.click()
    qtbot.waitUntil(lambda: not panel.running, timeout=120_000)
    layer = state.viewer.layers["cell0 [denoised]"]
    assert [str(u) for u in layer.units] == ["micrometer", "micrometer"]
    n_layers = len(state.viewer.layers)
    panel.run_button.click()  # every result is skipped now: none opens again
    qtbot.waitUntil(lambda: not panel.running, timeout=60_000)
    assert "3 already done" in panel.message.text()
    assert len(state.viewer.layers) == n_layers


def test_closing_during_a_run_stops_it_at_once_and_writes_no_more_files(make_napari_viewer,
                                                                        qtbot, small_model,
                                                                        tmp_path):
    """What closing the widget or viewer does (``WidgetState.shutdown``): the run stops
    before its next file and the close does not wait out its timeout."""
    import time

    from napari_gr2r._qt._files_panel import FilesPanel
    from napari_gr2r._qt._jobs import ABANDON_WAIT_S
    from napari_gr2r._qt._state import WidgetState

    raw = tmp_path / "many"
    raw.mkdir()
    rng = np.random.default_rng(2)
    for i in range(40):
        tifffile.imwrite(raw / f"f{i:02d}.tif", rng.normal(100, 20, (96, 96)).astype(np.float32))
    viewer = make_napari_viewer()
    state = WidgetState(viewer)
    panel = FilesPanel(state)
    qtbot.addWidget(panel)
    panel.add_paths([str(raw)])
    panel.set_output(str(tmp_path / "out"))
    panel.open_results.setChecked(False)
    state.set_model(small_model)
    panel.run_button.click()
    job = state.job("files")
    qtbot.waitUntil(lambda: panel.log.count() >= 1, timeout=60_000)
    started = time.perf_counter()
    state.shutdown()
    assert time.perf_counter() - started < ABANDON_WAIT_S
    assert job.wait(0)  # the run has ended
    written = len(list((tmp_path / "out").iterdir()))
    qtbot.wait(300)
    assert len(list((tmp_path / "out").iterdir())) == written < 40
