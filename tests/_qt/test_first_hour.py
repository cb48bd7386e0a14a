"""What a new user meets first: the right layer, the right axes, a dock that fits the screen,
plain words, and error paths that say what to do (each test fails on the widget before)."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtWidgets import QApplication

PLUGIN, WIDGET = "napari-gr2r", "GR2R Denoise"


@pytest.fixture
def viewer_widget(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    return viewer, widget


# ------------------------------------------------------------------------ 1. the right layer
@pytest.mark.parametrize("widget_first", [True, False])
def test_the_widget_follows_napaaris_selection_not_the_hidden_reference(make_napari_viewer,
                                                                        widget_first):
    viewer = make_napari_viewer()
    if widget_first:
        _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    viewer.open_sample(PLUGIN, "nuclei2d")
    if not widget_first:
        _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    combo = widget.data_panel.layer_combo
    assert combo.currentText() == "nuclei2d noisy"
    assert widget.state.chosen_layer().visible
    viewer.layers.selection.active = viewer.layers["nuclei2d clean"]  # the user picks it
    assert combo.currentText() == "nuclei2d clean"
    viewer.layers.selection.active = viewer.layers["nuclei2d noisy"]
    assert combo.currentText() == "nuclei2d noisy"


# --------------------------------------------------------------------------- 2. the axes
def test_a_small_axis_is_taken_for_channels_and_a_guess_says_so(viewer_widget):
    viewer, widget = viewer_widget
    panel = widget.data_panel
    viewer.add_image(np.zeros((5, 2, 64, 64), np.float32), name="timelapse")
    assert panel.axes_edit.text() != "TZYX"
    assert "C" in panel.axes_edit.text()
    message = panel.axes_message.text()
    assert not message.startswith("✓")  # a guess, not a tick
    assert "guess" in message
    readings = [b.text() for b in panel.alternative_buttons if b.isVisibleTo(widget)]
    assert "TCYX" in [panel.axes_edit.text(), *readings]
    # one click on another reading takes it
    button = next(b for b in panel.alternative_buttons if b.text() and b.isVisibleTo(widget))
    reading = button.text()
    button.click()
    assert panel.axes_edit.text() == reading
    assert panel.axes_message.text().startswith("✓")
    tip = panel.axes_message.toolTip()
    assert all(f"{letter} (" in tip for letter in reading)  # a line per letter


def test_time_units_make_a_time_axis(viewer_widget):
    viewer, widget = viewer_widget
    viewer.add_image(np.zeros((6, 48, 48), np.float32), name="movie",
                     units=("s", "µm", "µm"))
    assert widget.data_panel.axes_edit.text() == "TYX"
    assert "guessed from the shape and the units" in widget.data_panel.axes_message.text()


def test_axes_the_file_gives_are_known(viewer_widget):
    viewer, widget = viewer_widget
    viewer.add_image(np.zeros((6, 48, 48), np.float32), name="read",
                     metadata={"axes": "TYX"})
    panel = widget.data_panel
    assert panel.axes_edit.text() == "TYX"
    assert panel.axes_message.text().startswith("✓")
    assert "the file" in panel.axes_message.text()


# ----------------------------------------------------------------------- 5. error paths
def test_a_nan_image_disables_train_with_a_plain_message(viewer_widget):
    viewer, widget = viewer_widget
    data = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    data[3, 4] = np.nan
    viewer.add_image(data, name="holes")
    training = widget.training_panel
    assert not training.train_button.isEnabled()
    message = widget.data_panel.axes_message.text()
    assert "NaN" in message
    assert "np." not in message  # no Python code for a biologist
    assert "NaN" in training.train_button.toolTip()
    training.start()  # nothing starts; the status is not left saying it trains
    assert not widget.state.training
    assert "Training" not in widget.state.model_label.text()


@pytest.mark.parametrize("others", [[], ["labels"]])
def test_without_an_image_layer_the_widget_says_why_train_is_grey(viewer_widget, others):
    viewer, widget = viewer_widget
    if others:
        viewer.add_labels(np.zeros((32, 32), np.uint8), name="mask")
    training = widget.training_panel
    assert not training.train_button.isEnabled()
    message = widget.data_panel.axes_message.text()
    assert "No image layer" in message
    if others:
        assert "labels" in message
    assert "No image layer" in training.train_button.toolTip()


# -------------------------------------------------------------------- 3. fits the screen
def test_the_dock_fits_a_laptop_screen(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(1280, 800)
    viewer.open_sample(PLUGIN, "nuclei2d")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    widget.settings_panel.advanced.expand(animate=False)
    widget.noise_section.expand(animate=False)
    widget.denoise_panel.files_button.click()
    QApplication.processEvents()
    assert window.height() <= 800
    assert widget.minimumSizeHint().height() < 700
    assert widget.width() <= 450
    assert PLUGIN + ": denoise files" not in viewer.window.dock_widgets


def test_closing_right_after_training_leaves_no_thread_behind(make_napari_viewer, qtbot, capfd):
    """Closing waits for the jobs it stops: a worker thread that outlived the window printed
    'RuntimeError: wrapped C/C++ object of type WorkerBaseSignals has been deleted'."""
    import gc

    from qtpy.QtCore import QThreadPool
    from tests.helpers import shrink_widget

    # threads that earlier tests' closed viewers stopped end first: this test counts its own
    QThreadPool.globalInstance().waitForDone(60_000)
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    viewer.add_image(np.random.default_rng(0).random((512, 512)).astype(np.float32), name="n")
    shrink_widget(widget, steps=3)
    widget.training_panel.train_button.click()
    qtbot.waitUntil(lambda: not widget.state.training, timeout=60_000)
    assert widget.state.assessing  # the assessment after training runs now
    viewer.close()
    gc.collect()  # what closing let go of is deleted now, as at the end of a session
    qtbot.wait(1000)  # and the events queued meanwhile are delivered: nothing starts again
    # the stopped job's thread ends (on a loaded machine its last block may take seconds)
    qtbot.waitUntil(lambda: QThreadPool.globalInstance().activeThreadCount() == 0,
                    timeout=15_000)
    QThreadPool.globalInstance().waitForDone(30_000)
    assert "RuntimeError" not in capfd.readouterr().err


# ----------------------------------------------------------------------- 4. plain words
JARGON = ("γ", "λ_g", "gr2r-paper", "r2r", "Noise σ (r2r)", "Validation fraction",
          "unsupervised", "pseudo")


def _shown_words(widget) -> list[str]:
    """Every label, button, check box and list item text the user sees in the dock."""
    from qtpy.QtWidgets import QAbstractButton, QComboBox, QLabel

    texts = [w.text() for w in widget.findChildren(QLabel)]
    texts += [w.text() for w in widget.findChildren(QAbstractButton)]
    for combo in widget.findChildren(QComboBox):
        texts += [combo.itemText(i) for i in range(combo.count())]
    return texts


def test_settings_and_curves_speak_plain_words(viewer_widget):
    viewer, widget = viewer_widget
    viewer.add_image(np.random.default_rng(1).random((64, 64)).astype(np.float32), name="n")
    widget.settings_panel.advanced.expand(animate=False)
    shown = " | ".join(_shown_words(widget))
    for word in JARGON:
        assert word not in shown, word
    # the symbols are still there, in tooltips
    settings = widget.settings_panel
    assert "γ" in settings.gamma.toolTip()
    assert "λ_g" in settings.lambda_g.toolTip()
    assert "gr2r-paper" in settings.method.toolTip()
    for control in (widget.training_panel.train_button, settings.device, settings.seed):
        assert control.toolTip()
    plot = widget.training_panel.loss_plot
    plot.add_point(1, {"loss": 1.0, "unsupervised": 0.5, "pseudo": 0.2, "regular": 0.1})
    plot.add_estimated_psnr(1, 30.0)
    legend = [label.text for _, label in plot.legend.items]
    assert not any(word in " ".join(legend) for word in ("unsupervised", "pseudo"))
    assert any("held-out" in text for text in legend)  # the curve's PSNR is named apart


def test_the_noise_section_speaks_plain_words_and_says_if_it_is_good(qtbot):
    from napari_gr2r import engine
    from napari_gr2r._qt._noise_panel import NoiseView

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:96]
    clean = 100.0 + 400.0 * (((yy // 24) + (xx // 24)) % 2)
    noisy = (clean + rng.normal(0, 25, clean.shape)).astype(np.float32)
    view = NoiseView()
    qtbot.addWidget(view)
    from tests._qt.test_noise_panel import _blur

    view.show_report(engine.assess(lambda b: _blur(b, sd=1.0), noisy, "YX"))
    text = view.summary.text()
    assert "·x +" not in text
    assert "input units" not in text
    assert "Estimated PSNR of the denoised image" in text
    assert "likely" in text
    assert "90 % interval" in text
    assert "noisy image" in text  # something to compare with
    assert "·" in view.summary.toolTip()  # the formula is in the tooltip
    assert view.verdict.text().startswith("Is this good?")
    assert "signal share" not in view.residual_label.text()


# -------------------------------------------------------------------- 5. the export's extra
def test_export_without_its_extra_is_disabled_with_a_hint(make_napari_viewer, monkeypatch):
    import importlib.util

    from tests.helpers import tiny_model

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("bioimageio") else real(name, *a))
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    widget.state.set_model(tiny_model())
    button = widget.export_panel.export_button
    assert not button.isEnabled()
    assert "napari-gr2r[bioimageio]" in button.toolTip()


# ---------------------------------------------------------------------- 6. smaller things
def test_the_3d_preview_lies_on_its_plane_and_the_result_keeps_the_metadata(viewer_widget,
                                                                           qtbot):
    from tests.helpers import shrink_widget

    viewer, widget = viewer_widget
    stack = np.random.default_rng(2).normal(100, 20, (6, 48, 48)).astype(np.float32)
    layer = viewer.add_image(stack, name="stack", scale=(2.0, 0.5, 0.5),
                             metadata={"experiment": "E12", "objective": "60x"})
    viewer.dims.set_point(0, 2.0 * 4)  # plane 4
    shrink_widget(widget, steps=10_000, width=4, net_dims="2d", preview_every=5)
    widget.training_panel.result_layer.setChecked(False)  # the preview stays
    widget.training_panel.train_button.click()
    qtbot.waitUntil(lambda: "stack [preview]" in viewer.layers, timeout=60_000)
    widget.state.stop_jobs()
    qtbot.waitUntil(lambda: not widget.state.training, timeout=60_000)
    preview = viewer.layers["stack [preview]"]
    assert preview.data.shape == (1, 48, 48)  # one plane thick, drawn on plane 4 only
    assert preview.translate[0] == pytest.approx(8.0)
    assert tuple(preview.scale) == (2.0, 0.5, 0.5)
    widget.denoise_panel.denoise_button.click()
    qtbot.waitUntil(lambda: "stack [denoised]" in viewer.layers and not widget.state.denoising,
                    timeout=60_000)
    result = viewer.layers["stack [denoised]"]
    assert result.metadata["experiment"] == "E12"
    assert result.metadata["objective"] == "60x"
    assert result.metadata["gr2r"]["source"] == "stack"
    assert layer.metadata == {"experiment": "E12", "objective": "60x"}  # the input's untouched


def test_the_menu_command_shows_its_progress(make_napari_viewer, qtbot, monkeypatch):
    from tests._qt.test_menu_sample import menu_action

    import napari_gr2r._menu as menu_module
    from napari_gr2r import engine

    monkeypatch.setattr(menu_module, "one_click_config", lambda: engine.TrainConfig.from_preset(
        "fast", steps=4, width=4, depth=1, patch_size=16, batch_size=2))
    viewer = make_napari_viewer(show=True)
    viewer.add_image(np.random.default_rng(3).random((48, 48)).astype(np.float32), name="c")
    dialog = viewer.window._qt_window._activity_dialog
    assert not dialog.isVisible()
    menu_action(viewer.window.layers_menu, "Filter", "Denoise", "Train GR2R and denoise").trigger()
    assert dialog.isVisible()
    qtbot.waitUntil(lambda: "c [denoised]" in viewer.layers, timeout=60_000)


def test_the_model_file_is_named_after_the_image(viewer_widget, monkeypatch):
    from qtpy.QtWidgets import QFileDialog
    from tests.helpers import tiny_model

    viewer, widget = viewer_widget
    viewer.add_image(np.zeros((48, 48), np.float32), name="HeLa: day 2")
    widget.state.set_model(tiny_model())
    asked = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        staticmethod(lambda *args: (asked.append(args[2]), ("", ""))[1]))
    widget.denoise_panel.save_model()
    assert asked == ["HeLa_ day 2.gr2r.pt"]


def test_the_curves_legend_fits_in_the_plot_at_the_docks_width(qtbot):
    """Every legend entry readable inside the plot (not cut at its left edge) at the width the
    plot has in napari's dock (376 px in a 400 px dock), before and after the whole image's
    estimate joins it."""
    from napari_gr2r._qt._loss_plot import LossPlot

    plot = LossPlot()
    qtbot.addWidget(plot)
    plot.resize(376, 480)
    plot.show()
    qtbot.waitExposed(plot)
    for step in range(10, 110, 10):
        plot.add_point(step, {"loss": 0.06 / step, "unsupervised": 0.05 / step,
                              "val_loss": 0.055 / step})
        plot.add_estimated_psnr(step, 30 + step / 50)

    def fits() -> bool:
        view = plot.plot.getPlotItem().vb.sceneBoundingRect()
        legend = plot.legend.sceneBoundingRect()
        return view.left() <= legend.left() and legend.right() <= view.right() + 1

    qtbot.waitUntil(fits, timeout=5_000)
    assert [label.text for _, label in plot.legend.items][-1] == "est. PSNR, held-out (right)"
    rows = len(plot.legend.items)
    plot.show_whole_image(100, 32.5, 31.0, 34.0)
    assert len(plot.legend.items) == rows + 1
    qtbot.waitUntil(fits, timeout=5_000)
    plot.clear()  # a new model: the estimates leave the legend rather than leave blank rows
    assert not any(sample.item in (plot.whole_point, plot.psnr_curve)
                   for sample, _ in plot.legend.items)


def test_the_loss_axis_has_values_from_the_first_points(qtbot):
    """Early in training the losses span less than the gap between two of log mode's usual
    ticks (0.02 and 0.03): the axis still shows values, distinct from each other."""
    from napari_gr2r._qt._loss_plot import LossPlot

    plot = LossPlot()
    qtbot.addWidget(plot)
    plot.resize(376, 420)
    plot.show()
    qtbot.waitExposed(plot)
    for step, value in ((10, 0.0241), (20, 0.0232), (30, 0.0224)):
        plot.add_point(step, {"loss": value})
    axis = plot.plot.getAxis("left")
    qtbot.waitUntil(lambda: axis.range[1] - axis.range[0] < 0.1, timeout=5_000)
    low, high = axis.range
    values = [v for _, level in axis.tickValues(low, high, 300) for v in level]
    assert len(values) >= 2
    assert all(low <= v <= high for v in values)
    strings = axis.tickStrings(values, 1.0, 0.0)
    assert len(set(strings)) == len(strings)
    assert not plot.plot.getPlotItem().getAxis("right").style["showValues"]  # no PSNR yet
