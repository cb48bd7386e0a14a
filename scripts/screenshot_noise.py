"""Screenshot of the GR2R widget's Noise section after training on the 2D sample, for the docs.

Run under a display (``xvfb-run -a -s "-screen 0 1600x1200x24" python scripts/screenshot_noise.py``).
It opens the 2D nuclei sample, trains the fast preset from the widget, waits for the Noise
panel's assessment of the trained model, and grabs the dock widget.
"""

from __future__ import annotations

from pathlib import Path

import _shots
import napari
from qtpy.QtCore import Qt
from qtpy.QtTest import QTest


def main() -> None:
    parser = _shots.parser(__doc__, "widget-noise.png", steps=200)
    args = parser.parse_args()

    viewer = napari.Viewer(title="napari-gr2r")
    viewer.window.resize(1500, 1150)
    viewer.open_sample("napari-gr2r", "nuclei2d")
    noisy = viewer.layers["nuclei2d noisy"]
    _, widget = viewer.window.add_plugin_dock_widget("napari-gr2r", "GR2R Denoise")
    widget.data_panel.layer_combo.setCurrentText(noisy.name)
    widget.settings_panel.preset.setCurrentText("fast")
    widget.settings_panel.steps.setValue(args.steps)
    widget.noise_section.expand(animate=False)
    QTest.mouseClick(widget.training_panel.train_button, Qt.MouseButton.LeftButton)
    panel = widget.noise_panel
    ok = _shots.wait(lambda: not widget.state.training and panel.view.report is not None
              and not widget.state.assessing, args.timeout)
    if not ok:
        widget.state.stop_jobs()
        _shots.wait(lambda: not widget.state.training, 60)
        viewer.close()
        raise SystemExit(f"no assessment within {args.timeout} s")
    _shots.wait(lambda: False, 1.0)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    widget.grab().save(args.out)
    print(f"saved {args.out}: {panel.view.summary.text()}")
    viewer.close()


if __name__ == "__main__":
    main()
