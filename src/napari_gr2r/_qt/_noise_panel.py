"""The Noise panel: the user's noise as the engine models it, and whether denoising removed signal.

:class:`NoiseView` draws, with pyqtgraph, the fitted variance function over the data's local
mean/variance scatter (and the per-bin variances the error estimate follows), the noise's
correlation between pixels as a small image, and, once a model has been assessed, the
autocorrelation of the residual ``y - f(y)``, with a warning when it holds image structure.
:class:`NoisePanel` runs :func:`napari_gr2r.engine.assess` (or, without a model,
:func:`~napari_gr2r.engine.fit_noise`) in a thread worker, on a copy of the model: by its
**Assess** button and after each training; the estimate goes to the shared state, and into the
metadata of the layer denoised with that model. Above them, :class:`~._calibration.NoiseSource`
chooses where the noise comes from: fitted on the image, or a calibration.
"""

from __future__ import annotations

import copy
from functools import partial
from typing import Any

import numpy as np
import pyqtgraph as pg
from qtpy.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_gr2r import engine
from napari_gr2r.engine.noise.correlation import kernel_autocorrelation
from napari_gr2r.engine.quality.estimate import STRUCTURE_MESSAGE, FittedNoise, QualityReport
from napari_gr2r.engine.quality.report import worse_message

from ._calibration import NoiseSource
from ._jobs import Job
from ._layers import LayerChoiceError, check_axes, check_model_fits, layer_array
from ._results import record_estimate
from ._state import Panel, WidgetState

_WARN_STYLE = "color: #ffcc55; font-weight: bold;"


class NoiseView(QWidget):
    """Shows a :class:`FittedNoise` (:meth:`show_noise`) and a :class:`QualityReport`
    (:meth:`show_report`)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.summary = QLabel("Press Assess to fit the noise of the chosen layer (and estimate "
                              "the current model's error on it), or train a model.")
        self.summary.setWordWrap(True)
        self.variance_plot = pg.PlotWidget()
        self.variance_plot.setMinimumHeight(150)
        self.variance_plot.setLabel("bottom", "brightness (local mean)")
        self.variance_plot.setLabel("left", "noise variance")
        self.variance_plot.setToolTip(
            "Each grey dot: a small window's brightness and noise variance. The blue line is "
            "the noise model training uses; the orange dots, the per-brightness variances the "
            "quality estimate uses.")
        self.variance_plot.showGrid(x=True, y=True, alpha=0.2)
        self.variance_plot.addLegend(offset=(5, 5), labelTextSize="8pt")
        self.scatter = pg.ScatterPlotItem(size=3, pen=None, brush=pg.mkBrush(150, 150, 150, 120),
                                          name="windows of the image")
        self.knots = pg.ScatterPlotItem(size=7, pen=pg.mkPen(255, 200, 80),
                                        brush=pg.mkBrush(255, 200, 80, 160),
                                        name="per brightness")
        self.line = pg.PlotDataItem(pen=pg.mkPen((90, 170, 255), width=2),
                                    name="noise model")
        for item in (self.scatter, self.knots, self.line):
            self.variance_plot.addItem(item)

        self.kernel_view = self._image_view("noise between pixels")
        self.kernel_view.setToolTip(
            "How the noise of a pixel goes with its neighbours' (autocorrelation, lags ±3): a "
            "single bright centre means independent (white) noise.")
        self.residual_view = self._image_view("what was removed")
        self.residual_view.setToolTip(
            "The autocorrelation of what denoising removed (noisy − denoised): noise alone "
            "gives a single bright centre; stripes or blobs are image structure removed.")
        self.kernel_image = pg.ImageItem()
        self.residual_image = pg.ImageItem()
        self.kernel_view.addItem(self.kernel_image)
        self.residual_view.addItem(self.residual_image)
        self.kernel_label = QLabel("")
        self.residual_label = QLabel("after assessing a model")
        self.verdict = QLabel("")
        self.verdict.setWordWrap(True)
        self.verdict.setToolTip(
            "PSNR (peak signal-to-noise ratio, dB) compares the image's range with the error "
            "left. Halving the squared error adds about three decibels; the gain over the "
            "noisy image says more than the figure alone.")
        self.warning = QLabel("")
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet(_WARN_STYLE)
        self.warning.setVisible(False)

        grid = QGridLayout()
        grid.addWidget(self.kernel_view, 0, 0)
        grid.addWidget(self.residual_view, 0, 1)
        grid.addWidget(self.kernel_label, 1, 0)
        grid.addWidget(self.residual_label, 1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.summary)
        layout.addWidget(self.verdict)
        layout.addWidget(self.variance_plot)
        layout.addLayout(grid)
        layout.addWidget(self.warning)
        self.noise: FittedNoise | None = None
        self.report: QualityReport | None = None

    @staticmethod
    def _image_view(title: str) -> pg.PlotWidget:
        view = pg.PlotWidget(title=title)
        view.setFixedSize(140, 125)
        view.setAspectLocked(True)
        view.hideAxis("left")
        view.hideAxis("bottom")
        return view

    # ------------------------------------------------------------------------------------
    def show_noise(self, noise: FittedNoise) -> None:
        """Draw the variance function over the data's scatter, and the noise correlation."""
        self.noise = noise
        xs = np.asarray(noise.scatter.get("mean", []), np.float64)
        vs = np.asarray(noise.scatter.get("variance", []), np.float64)
        self.scatter.setData(xs, vs)
        kx = np.asarray(noise.knots.get("mean", []), np.float64)
        kv = np.asarray(noise.knots.get("variance", []), np.float64)
        self.knots.setData(kx, kv)
        if xs.size:
            grid = np.linspace(float(xs.min()), float(xs.max()), 64)
            self.line.setData(grid, noise.variance(grid, 0))
        else:
            self.line.setData([], [])
        acf = kernel_autocorrelation(noise.kernel)
        self.kernel_image.setImage(acf.T, levels=(-1.0, 1.0), lut=_diverging_lut())
        self.kernel_label.setText(
            "white: independent pixels" if noise.kernel is None else
            f"shared with neighbours ({noise.neighbour_correlation:.2f})")
        self.summary.setText(noise_words(noise))
        self.summary.setToolTip(
            f"Noise model: variance = {noise.gain[0]:.3g} · intensity + {noise.offset[0]:.3g} "
            "(Poisson-Gaussian, in the image's units); standard deviation σ = "
            f"{noise.sd:.4g} on average.")

    def show_report(self, report: QualityReport) -> None:
        """The noise, the estimated error and the residual's autocorrelation."""
        self.report = report
        self.show_noise(report.noise)
        acf = np.asarray(report.residual_autocorrelation, np.float64)
        self.residual_image.setImage(acf.T, levels=(-1.0, 1.0), lut=_diverging_lut())
        self.residual_label.setText(
            ("image structure in it" if report.signal_removed else "noise only")
            + f" ({report.residual_structure:.2f})")
        self.summary.setText(quality_words(report) + "\n" + self.summary.text())
        self.verdict.setText(verdict(report))
        said = ([worse_message(report)] if report.worse_than_input else []) + \
            ([STRUCTURE_MESSAGE] if report.signal_removed else [])
        self.warning.setText("\n".join(m.replace("warning: ", "") for m in said))
        self.warning.setVisible(bool(said))

    def clear(self) -> None:
        self.report = None
        self.residual_image.clear()
        self.residual_label.setText("after assessing a model")
        self.verdict.setText("")
        self.warning.setVisible(False)


def noise_words(noise: FittedNoise) -> str:
    """The fitted noise in words: how strong, whether it grows with brightness, how it spreads."""
    xs = np.asarray(noise.scatter.get("mean", []), np.float64)
    grows = False
    if xs.size and noise.gain[0] > 0:
        low, high = np.percentile(xs, [5, 95])
        var_low, var_high = noise.variance(np.array([low, high]), 0)
        grows = var_high > 1.5 * max(var_low, 1e-12)
    how = ("stronger in bright parts (photon noise)" if grows
           else "about the same at every brightness")
    spread = ("independent from pixel to pixel" if noise.kernel is None
              else "shared between neighbouring pixels")
    if noise.level.correlation_unmeasured:
        spread = ("seemingly shared between neighbouring pixels, in a way this image does not "
                  "let us measure: its strength is uncertain (calibrate on repeated captures "
                  "for a tight estimate)")
    where = " (from the calibration)" if noise.level.source == "calibration" else ""
    return (f"Noise{where}: standard deviation about {noise.sd:.3g} (image units), {how}, "
            f"{spread}.")


def quality_words(report: QualityReport) -> str:
    """The error estimate in words, with the noisy image's figure to compare with."""
    text = (f"Estimated PSNR of the denoised image: {report.psnr_text(decimals=1)}, a 90 % "
            "interval (higher is better; no clean image needed).")
    if report.noise_variance > 0 and report.data_range > 0 and not np.isnan(report.psnr()):
        noisy = 10 * np.log10(report.data_range**2 / report.noise_variance)
        text += (f" The noisy image: about {noisy:.1f} dB, so denoising gained "
                 f"{report.psnr() - noisy:+.1f} dB.")
    return text


def verdict(report: QualityReport) -> str:
    """Is this good? A rough reading of the estimate for someone who has not met PSNR."""
    if report.signal_removed:
        return "Is this good? Check: denoising also removed image structure (see the warning)."
    gain = (report.psnr() - 10 * np.log10(report.data_range**2 / report.noise_variance)
            if report.noise_variance > 0 and report.data_range > 0 else float("nan"))
    if not np.isfinite(gain):
        return ""
    if gain >= 6:
        return ("Is this good? Yes: the error left is a small part of the noise there was. "
                "Look at fine details to be sure nothing was smoothed away.")
    if gain >= 2:
        return ("Is this good? Better than the noisy image; training longer (more steps, "
                "or the balanced preset's four networks) may improve it.")
    return ("Is this good? Hardly better than the noisy image: train longer, or check the "
            "axes and that the image is really noisy.")


def _diverging_lut() -> np.ndarray:
    """Blue (negative) to black (0) to orange (positive)."""
    t = np.linspace(-1, 1, 256)[:, None]
    neg = np.array([[60, 130, 255]])
    pos = np.array([[255, 170, 60]])
    lut = np.where(t < 0, -t * neg, t * pos)
    return np.clip(lut, 0, 255).astype(np.uint8)


def assess_layer(model: engine.GR2RModel | None, data: Any, axes: str, device: str,
                 should_stop: Any, noise: engine.NoiseCalibration | None = None,
                 ) -> FittedNoise | QualityReport | None:
    """The worker's job: the error estimate of ``model`` on ``data``, or its noise alone;
    None when stopped. ``noise``: a calibration to use instead of a fit on ``data``."""
    chosen = noise if noise is not None else "fit"
    if model is None:
        return engine.fit_noise(data, axes, noise=chosen)
    try:
        return engine.assess(model, data, axes, device=device, should_stop=should_stop,
                             noise=chosen)
    except InterruptedError:
        return None


class NoisePanel(Panel):
    """**Assess** and 'after training' over a :class:`NoiseView`."""

    def __init__(self, state: WidgetState, parent: QWidget | None = None) -> None:
        super().__init__(state, parent)
        self.view = NoiseView()
        self.assess_button = QPushButton("Assess")
        self.assess_button.setToolTip(
            "Fit the noise of the chosen layer and, with a model, estimate the denoised image's "
            "error against the unknown clean image (no clean image needed).")
        self.assess_button.clicked.connect(self.start)
        self.after_training = QCheckBox("after training")
        self.after_training.setChecked(True)
        self.after_training.setToolTip("Assess each newly trained model on its layer.")
        row = QHBoxLayout()
        row.addWidget(self.assess_button)
        row.addWidget(self.after_training)
        row.addStretch()
        self.noise_source = NoiseSource(state)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.noise_source)
        layout.addLayout(row)
        layout.addWidget(self.view)
        self._pending = False
        state.model_changed.connect(self._on_model_changed)
        state.noise_changed.connect(self.view.clear)
        state.busy_changed.connect(self._maybe_start_pending)

    def _on_model_changed(self) -> None:
        self.view.clear()
        self._pending = self.after_training.isChecked() and self.state.model is not None
        self._maybe_start_pending()

    def _maybe_start_pending(self) -> None:
        if self._pending and not self.state.busy:
            self._pending = False
            self.start(quiet=True)

    def start(self, quiet: bool = False) -> None:
        """Assess the current model (or fit the noise) on the chosen layer, in a worker."""
        state = self.state
        if state.assessing:
            return
        layer, axes = state.chosen_layer(), state.axes
        model = state.model
        try:
            info = check_axes(layer, axes)
            if model is not None:
                check_model_fits(model, info)
        except (LayerChoiceError, engine.GR2RError) as exc:
            if not quiet:
                state.reject(str(exc))
            return
        # a copy: training may go on with the current model's network meanwhile
        work_model = copy.deepcopy(model) if model is not None else None
        self.assess_button.setEnabled(False)
        self.view.summary.setText(f"Assessing {layer.name!r}…")
        job = Job("assess")
        state.run_job(job, assess_layer, work_model, layer_array(layer), axes,
                      state.settings.device_id(), job.should_stop, state.noise,
                      returned=partial(self._on_returned, model, layer), errored=self._on_error,
                      refused=self.view.summary.setText,
                      finished=lambda: self.assess_button.setEnabled(True))

    def _on_error(self, exc: BaseException) -> None:
        self.state.report_worker_error(exc)

    def _on_returned(self, model: Any, layer: Any, result: Any) -> None:
        if result is None:  # stopped
            self.view.summary.setText("Assessment stopped.")
            return
        if isinstance(result, FittedNoise):
            self.view.show_noise(result)
            return
        self.view.show_report(result)
        self.state.set_quality(result, model, layer.name)
        record_estimate(self.viewer, layer, model, result)
