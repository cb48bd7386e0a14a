"""Screenshot of the GR2R Denoise widget training on the 3D sample, for the docs.

Run under a display (``xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot.py``).
It opens the 3D nuclei sample, starts training from the widget with the fast preset and a live
preview, and grabs the whole window once the loss curve and the preview are on screen.
"""

from __future__ import annotations

from pathlib import Path

import _shots
import napari
from qtpy.QtCore import Qt
from qtpy.QtTest import QTest


def main() -> None:
    parser = _shots.parser(__doc__, "widget-training-3d.png", steps=200)
    parser.add_argument("--width", type=int, default=16, help="network width")
    parser.add_argument("--batch", type=int, default=8, help="patches per step")
    parser.add_argument("--net", choices=("auto", "2d", "3d"), default="2d")
    args = parser.parse_args()

    viewer = napari.Viewer(title="napari-gr2r")
    viewer.window.resize(1500, 950)
    viewer.open_sample("napari-gr2r", "nuclei3d")
    noisy, clean = viewer.layers["nuclei3d noisy"], viewer.layers["nuclei3d clean"]
    _, widget = viewer.window.add_plugin_dock_widget("napari-gr2r", "GR2R Denoise")
    widget.data_panel.layer_combo.setCurrentText(noisy.name)
    widget.settings_panel.preset.setCurrentText("fast")
    widget.settings_panel.steps.setValue(600)
    widget.settings_panel.width.setValue(args.width)
    widget.settings_panel.batch.setValue(args.batch)
    widget.settings_panel.preview_every.setValue(10)
    # A 2D network trained on every slice of the stack: minutes on a laptop CPU, where the
    # fast preset's 3D network takes seconds per step.
    widget.settings_panel.net_dims.setCurrentText(args.net)
    viewer.dims.set_point(0, noisy.scale[0] * (noisy.data.shape[0] // 2))

    QTest.mouseClick(widget.training_panel.train_button, Qt.MouseButton.LeftButton)
    preview_name = f"{noisy.name} [preview]"
    ok = _shots.wait(lambda: preview_name in viewer.layers and any(
        s >= args.steps for s, _ in widget.training_panel.loss_plot.points("loss")), args.timeout)
    if not ok:
        widget.state.stop_jobs()
        _shots.wait(lambda: not widget.state.training, 60)
        viewer.close()
        raise SystemExit(f"training did not reach step {args.steps} in {args.timeout} s")
    clean.visible = True
    viewer.grid.enabled = True
    viewer.grid.shape = (1, 3)
    viewer.layers.selection.active = noisy
    viewer.reset_view()
    _shots.wait(lambda: False, 1.0)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(args.out, canvas_only=False, flash=False)
    print(f"saved {args.out} at step {max(s for s, _ in widget.training_panel.loss_plot.points('loss'))}")
    widget.state.stop_jobs()
    _shots.wait(lambda: not widget.state.training, 60)
    viewer.close()


if __name__ == "__main__":
    main()
