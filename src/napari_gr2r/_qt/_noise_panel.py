"""The Noise panel: the user's noise as the engine models it, and whether denoising removed signal.

Three pyqtgraph views: the fitted variance function over the data's local mean/variance
scatter (and the per-bin variances the error estimate follows), the noise's correlation between
pixels as a small image, and, once a model has been assessed, the autocorrelation of the
residual ``y - f(y)`` with a warning when it holds image structure.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from qtpy.QtWidgets import QGridLayout, QLabel, QVBoxLayout, QWidget

from napari_gr2r.engine.quality import STRUCTURE_MESSAGE, FittedNoise, QualityReport

_WARN_STYLE = "color: #ffcc55; font-weight: bold;"


def _kernel_autocorrelation(kernel: list[list[float]] | None, radius: int = 3) -> np.ndarray:
    """The correlation between pixels that ``kernel`` gives white noise (lags ±radius)."""
    size = 2 * radius + 1
    out = np.zeros((size, size))
    if kernel is None:
        out[radius, radius] = 1.0
        return out
    k = np.asarray(kernel, np.float64)
    ky, kx = k.shape
    full = np.zeros((ky + size, kx + size))
    full[:ky, :kx] = k
    spec = np.fft.fft2(full)
    acf = np.fft.fftshift(np.real(np.fft.ifft2(np.abs(spec) ** 2)))
    cy, cx = full.shape[0] // 2, full.shape[1] // 2
    out = acf[cy - radius:cy + radius + 1, cx - radius:cx + radius + 1]
    return out / max(out[radius, radius], 1e-12)


class NoisePanel(QWidget):
    """Shows a :class:`FittedNoise` (:meth:`show_noise`) and a :class:`QualityReport`
    (:meth:`show_report`)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.summary = QLabel("Select an image layer and press Fit noise, or train a model.")
        self.summary.setWordWrap(True)
        self.variance_plot = pg.PlotWidget()
        self.variance_plot.setMinimumHeight(150)
        self.variance_plot.setLabel("bottom", "local mean")
        self.variance_plot.setLabel("left", "noise variance")
        self.variance_plot.showGrid(x=True, y=True, alpha=0.2)
        self.variance_plot.addLegend(offset=(5, 5), labelTextSize="8pt")
        self.scatter = pg.ScatterPlotItem(size=3, pen=None, brush=pg.mkBrush(150, 150, 150, 120),
                                          name="data (3x3 mean, high-pass variance)")
        self.knots = pg.ScatterPlotItem(size=7, pen=pg.mkPen(255, 200, 80),
                                        brush=pg.mkBrush(255, 200, 80, 160),
                                        name="per-bin variance (estimate)")
        self.line = pg.PlotDataItem(pen=pg.mkPen((90, 170, 255), width=2),
                                    name="fitted a·x + b")
        for item in (self.scatter, self.knots, self.line):
            self.variance_plot.addItem(item)

        self.kernel_view = self._image_view("noise correlation")
        self.residual_view = self._image_view("residual autocorrelation")
        self.kernel_image = pg.ImageItem()
        self.residual_image = pg.ImageItem()
        self.kernel_view.addItem(self.kernel_image)
        self.residual_view.addItem(self.residual_image)
        self.kernel_label = QLabel("")
        self.residual_label = QLabel("after training")
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
        layout.addWidget(self.variance_plot)
        layout.addLayout(grid)
        layout.addWidget(self.warning)
        self.noise: FittedNoise | None = None
        self.report: QualityReport | None = None

    @staticmethod
    def _image_view(title: str) -> pg.PlotWidget:
        view = pg.PlotWidget(title=title)
        view.setFixedSize(150, 150)
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
        acf = _kernel_autocorrelation(noise.kernel)
        self.kernel_image.setImage(acf.T, levels=(-1.0, 1.0), lut=_diverging_lut())
        self.kernel_label.setText(
            "white (no correlation)" if noise.kernel is None else
            f"neighbour correlation {noise.neighbour_correlation:.2f}")
        self.summary.setText(
            f"Noise sd {noise.sd:.4g}; variance {noise.gain[0]:.3g}·x + {noise.offset[0]:.3g} "
            f"(input units); {'white' if noise.kernel is None else 'correlated'} noise.")

    def show_report(self, report: QualityReport) -> None:
        """The noise, the estimated error and the residual's autocorrelation."""
        self.report = report
        self.show_noise(report.noise)
        acf = np.asarray(report.residual_autocorrelation, np.float64)
        self.residual_image.setImage(acf.T, levels=(-1.0, 1.0), lut=_diverging_lut())
        self.residual_label.setText(f"signal share {report.residual_structure:.2f}")
        self.summary.setText(
            f"Estimated PSNR {report.psnr():.2f} dB (MSE {report.mse:.4g}, data range "
            f"{report.data_range:.4g}). " + self.summary.text())
        self.warning.setText(STRUCTURE_MESSAGE.replace("warning: ", "") if report.signal_removed
                             else "")
        self.warning.setVisible(report.signal_removed)

    def clear(self) -> None:
        self.report = None
        self.residual_image.clear()
        self.residual_label.setText("after training")
        self.warning.setVisible(False)


def _diverging_lut() -> np.ndarray:
    """Blue (negative) to black (0) to orange (positive)."""
    t = np.linspace(-1, 1, 256)[:, None]
    neg = np.array([[60, 130, 255]])
    pos = np.array([[255, 170, 60]])
    lut = np.where(t < 0, -t * neg, t * pos)
    return np.clip(lut, 0, 255).astype(np.uint8)
