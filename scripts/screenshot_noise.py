"""Screenshot of the GR2R widget's Noise section after training on the 2D sample, for the docs.

Run under a display (``xvfb-run -a -s "-screen 0 1600x1200x24" python scripts/screenshot_noise.py``).
It opens the 2D nuclei sample, trains the fast preset from the widget, waits for the Noise
panel's assessment of the trained model, and grabs the dock widget.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import napari
from qtpy.QtCore import Qt
from qtpy.QtTest import QTest
from qtpy.QtWidgets import QApplication


def wait(condition, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        QApplication.processEvents()
        if condition():
            return True
        time.sleep(0.02)
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs"
                                             / "widget-noise.png"))
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()

    viewer = napari.Viewer(title="napari-gr2r")
    viewer.window.resize(1500, 1150)
    viewer.open_sample("napari-gr2r", "nuclei2d")
    noisy = viewer.layers["nuclei2d noisy"]
    _, widget = viewer.window.add_plugin_dock_widget("napari-gr2r", "GR2R Denoise")
    widget.layer_combo.setCurrentText(noisy.name)
    widget.preset.setCurrentText("fast")
    widget.steps.setValue(args.steps)
    widget.noise_section.expand(animate=False)
    QTest.mouseClick(widget.train_button, Qt.MouseButton.LeftButton)
    panel = widget.noise_panel
    ok = wait(lambda: not widget.training and panel.view.report is not None
              and not widget.state.assessing, args.timeout)
    if not ok:
        widget._on_stop()
        wait(lambda: not widget.training, 60)
        viewer.close()
        raise SystemExit(f"no assessment within {args.timeout} s")
    wait(lambda: False, 1.0)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    widget.grab().save(args.out)
    print(f"saved {args.out}: {panel.view.summary.text()}")
    viewer.close()


if __name__ == "__main__":
    main()
