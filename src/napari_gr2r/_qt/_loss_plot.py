"""A live plot of the training losses (pyqtgraph), and the estimated PSNR on its own axis."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QCheckBox, QHBoxLayout, QVBoxLayout, QWidget

_COLOURS = {
    "loss": (230, 230, 230),
    "unsupervised": (80, 160, 255),
    "regular": (255, 170, 60),
    "pseudo": (120, 220, 120),
    "val_loss": (255, 90, 90),
}
_FALLBACK = [(200, 120, 255), (255, 230, 90), (90, 230, 230)]

LABELS = {
    "loss": "total",
    "unsupervised": "predict from a re-noised copy",
    "regular": "stay close to the input",
    "pseudo": "consistency",
    "val_loss": "held-out patches",
}
"""The curves' names in the legend; the engine's names (the keys) are in the tooltip."""
PSNR_LABEL = "est. PSNR, held-out (right)"
WHOLE_LABEL = "est. PSNR, whole image (right)"


class _LossAxis(pg.AxisItem):
    """The loss axis: in log mode, pyqtgraph labels only multiples of powers of ten, so a range
    narrower than the gap between two of them (early in training) had no labels at all; such
    a range gets evenly spaced round values instead, each written with the digits that tell
    them apart."""

    def logTickValues(self, minVal, maxVal, size, stdTicks):
        ticks = super().logTickValues(minVal, maxVal, size, stdTicks)
        if sum(len(values) for _, values in ticks) >= 2 or not maxVal > minVal:
            return ticks
        low, high = 10.0**minVal, 10.0**maxVal
        step = 10.0 ** math.floor(math.log10((high - low) / 3))
        step *= next(f for f in (1, 2, 5, 10) if (high - low) / (step * f) <= 5)
        values = np.arange(math.ceil(low / step) * step, high, step)
        return [(None, [float(v) for v in np.log10(values[values > 0])])]

    def logTickStrings(self, values, scale, spacing):
        numbers = 10 ** np.asarray(values, float) * scale
        for digits in range(1, 5):
            strings = [f"{x:.{digits}g}" for x in numbers]
            if len(set(strings)) == len(strings):
                return strings
        return strings


_PSNR_COLOUR = (255, 210, 80)
_WHOLE_COLOUR = (255, 140, 0)


class LossPlot(QWidget):
    """Each loss term and the validation loss against the step, raw (faint) and smoothed, and
    the estimated PSNR at each validation on a right-hand axis (dB).

    Parameters
    ----------
    smoothing : float
        Weight of the past in the exponential moving average of the smoothed curves.
    """

    def __init__(self, parent: QWidget | None = None, smoothing: float = 0.6) -> None:
        super().__init__(parent)
        self.smoothing = smoothing
        self.plot = pg.PlotWidget(axisItems={"left": _LossAxis("left")})
        self.plot.setMinimumHeight(160)
        self.plot.setToolTip(
            "Training losses (lower is better) and, on the right, the estimated PSNR of the "
            "held-out patches (higher is better; the Noise and quality section gives the whole "
            "image's). Curves: total; 'predict from a re-noised copy' (unsupervised term); "
            "'stay close to the input' (regular term, λ_g); 'consistency' (pseudo term, γ); "
            "'held-out patches' (validation loss). After training, a star on the right-hand "
            "axis: the whole image's estimated PSNR, its bar the 90 % interval.")
        self.plot.setLabel("bottom", "step")
        self.plot.setLabel("left", "loss")
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        # short names (the tooltip has the long ones) on a dark ground: the legend must fit
        # inside the plot at the dock's width, over the curves
        self.legend = self.plot.addLegend(offset=(-5, 5), labelTextSize="8pt",
                                          brush=(0, 0, 0, 170))
        self.log_scale = QCheckBox("log scale")
        self.log_scale.setChecked(True)
        self.log_scale.toggled.connect(self._on_log_toggled)
        self.smoothed_only = QCheckBox("smoothed only")
        self.smoothed_only.toggled.connect(self._on_smoothed_toggled)
        row = QHBoxLayout()
        row.addWidget(self.log_scale)
        row.addWidget(self.smoothed_only)
        row.addStretch()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)
        layout.addLayout(row)
        self._series: dict[str, dict] = {}
        self._build_psnr_axis()
        self._on_log_toggled(True)

    def _build_psnr_axis(self) -> None:
        """A second view box, sharing the step axis, drawn against the right-hand axis."""
        item = self.plot.getPlotItem()
        self.psnr_view = pg.ViewBox()
        item.showAxis("right")
        item.scene().addItem(self.psnr_view)
        right = item.getAxis("right")
        right.linkToView(self.psnr_view)
        right.setLabel("estimated PSNR, held-out patches (dB)")
        right.enableAutoSIPrefix(False)
        self.psnr_view.setXLink(item)
        self.psnr_curve = pg.PlotDataItem([], [], pen=pg.mkPen(_PSNR_COLOUR, width=2,
                                                               style=Qt.PenStyle.DashLine),
                                          symbol="t", symbolSize=7, symbolBrush=_PSNR_COLOUR)
        self.psnr_view.addItem(self.psnr_curve)
        self._show_psnr(False)
        self._psnr: tuple[list[int], list[float]] = ([], [])
        # the whole image's estimate (Assess after training) with its 90 % interval
        zero = np.zeros(1)
        self.whole_bar = pg.ErrorBarItem(x=zero, y=zero, top=zero, bottom=zero, beam=0.0,
                                         pen=pg.mkPen(_WHOLE_COLOUR, width=2))
        self.whole_point = pg.PlotDataItem([], [], pen=None, symbol="star", symbolSize=12,
                                           symbolBrush=_WHOLE_COLOUR)
        self.psnr_view.addItem(self.whole_bar)
        self.psnr_view.addItem(self.whole_point)
        self._whole: tuple[int, float, float, float] | None = None
        self._show_whole(False)
        item.vb.sigResized.connect(self._sync_psnr_view)

    def _show_psnr(self, visible: bool) -> None:
        """The estimated PSNR's curve, its legend entry and its axis' values: shown once there
        is a point to show (before, the axis' 0 to 1 meant nothing)."""
        self.psnr_curve.setVisible(visible)
        self.plot.getPlotItem().getAxis("right").setStyle(showValues=visible)
        self._list_in_legend(self.psnr_curve, PSNR_LABEL, visible)

    def _show_whole(self, visible: bool) -> None:
        self.whole_bar.setVisible(visible)
        self.whole_point.setVisible(visible)
        self._list_in_legend(self.whole_point, WHOLE_LABEL, visible)

    def _list_in_legend(self, item: pg.GraphicsObject, label: str, listed: bool) -> None:
        # added and removed rather than hidden: a hidden legend row keeps its width and
        # height, and pyqtgraph draws it as a crossed-out eye
        present = any(sample.item is item for sample, _ in self.legend.items)
        if listed and not present:
            self.legend.addItem(item, label)
        elif present and not listed:
            self.legend.removeItem(item)

    def _sync_psnr_view(self) -> None:
        self.psnr_view.setGeometry(self.plot.getPlotItem().vb.sceneBoundingRect())
        self.psnr_view.linkedViewChanged(self.plot.getPlotItem().vb, self.psnr_view.XAxis)

    def add_estimated_psnr(self, step: int, value: float | None) -> None:
        """One point of the estimated-PSNR curve (dB); None and non-finite values are skipped."""
        if value is None or not math.isfinite(value):
            return
        xs, ys = self._psnr
        xs.append(step)
        ys.append(value)
        self.psnr_curve.setData(xs, ys)
        self._show_psnr(True)

    def show_whole_image(self, step: int, psnr: float, low: float, high: float) -> None:
        """The whole image's estimated PSNR (dB) at ``step`` with its 90 % interval
        ``(low, high)`` as a bar; an interval with no upper end (the error may be near zero)
        is drawn up to the estimate and marked with an arrow up. Replaces the previous one."""
        if not (math.isfinite(psnr) and math.isfinite(low)):
            return
        open_top = not math.isfinite(high)
        self.whole_bar.setData(x=np.array([float(step)]), y=np.array([psnr]),
                               bottom=np.array([max(psnr - low, 0.0)]),
                               top=np.array([0.0 if open_top else max(high - psnr, 0.0)]),
                               beam=0.0)
        self.whole_point.setData([step], [psnr], symbol="t1" if open_top else "star")
        self._whole = (step, psnr, low, high)
        self._show_whole(True)

    # ------------------------------------------------------------------------------------
    def clear(self) -> None:
        """Forget every curve (a new model starts from step 0)."""
        for series in self._series.values():
            self.plot.removeItem(series["raw"])
            self.plot.removeItem(series["smooth"])
            self.legend.removeItem(series["smooth"])
        self._series = {}
        self._psnr = ([], [])
        self.psnr_curve.setData([], [])
        self._show_psnr(False)
        self._whole = None
        self._show_whole(False)

    def add_point(self, step: int, values: dict[str, float]) -> None:
        """Append one value per named curve at ``step`` (non-finite values are skipped)."""
        for name, value in values.items():
            if value is None or not math.isfinite(value):
                continue
            series = self._series.get(name) or self._new_series(name)
            series["x"].append(step)
            series["y"].append(value)
            prev = series["s"][-1] if series["s"] else value
            series["s"].append(self.smoothing * prev + (1 - self.smoothing) * value)
            series["raw"].setData(series["x"], series["y"])
            series["smooth"].setData(series["x"], series["s"])

    def points(self, name: str) -> list[tuple[int, float]]:
        """The raw points of one curve (for tests and export); ``"estimated_psnr"`` is the
        right-hand axis's curve, ``"whole_image"`` its one ``(step, psnr, low, high)``."""
        if name == "estimated_psnr":
            return list(zip(*self._psnr))
        if name == "whole_image":
            return [self._whole] if self._whole is not None else []
        series = self._series.get(name)
        return list(zip(series["x"], series["y"])) if series else []

    @property
    def names(self) -> list[str]:
        return list(self._series)

    # ------------------------------------------------------------------------------------
    def _new_series(self, name: str) -> dict:
        colour = _COLOURS.get(name) or _FALLBACK[len(self._series) % len(_FALLBACK)]
        label = LABELS.get(name, name)
        symbol = "o" if name == "val_loss" else None
        raw = self.plot.plot([], [], pen=pg.mkPen((*colour, 70), width=1))
        smooth = self.plot.plot([], [], pen=pg.mkPen(colour, width=2), name=label,
                                symbol=symbol, symbolSize=5, symbolBrush=colour)
        raw.setVisible(not self.smoothed_only.isChecked())
        series = {"x": [], "y": [], "s": [], "raw": raw, "smooth": smooth}
        self._series[name] = series
        return series

    def _on_log_toggled(self, checked: bool) -> None:
        self.plot.setLogMode(x=False, y=checked)
        # the losses' log scale; the PSNR (already in dB) keeps a linear axis
        self.plot.getPlotItem().getAxis("right").setLogMode(x=False, y=False)

    def _on_smoothed_toggled(self, checked: bool) -> None:
        for series in self._series.values():
            series["raw"].setVisible(not checked)
