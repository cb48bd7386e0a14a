"""Qt widgets of the napari plugin (imported only by napari, through the manifest)."""

from ._loss_plot import LossPlot
from ._widget import GR2RWidget

__all__ = ["GR2RWidget", "LossPlot"]
