"""Screenshot of the whole GR2R Denoise dock with its settings open: neighbouring planes on the 3D
sample, Advanced (precision, compilation) and the Noise section with a calibration file loaded.

Run under a display of 1280×1024
(``xvfb-run -a -s "-screen 0 1280x1024x24" python scripts/screenshot_settings.py``). It saves the
dock's whole scrolling content (what scrolling shows, top to bottom), not the window.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import _shots
import napari

from napari_gr2r import engine


def main() -> None:
    parser = _shots.parser(__doc__, "screenshots/widget-settings.png", steps=0)
    args = parser.parse_args()
    viewer = napari.Viewer(title="napari-gr2r")
    window = viewer.window._qt_window
    window.move(0, 0)
    window.resize(1280, 1024)  # no window manager under Xvfb: maximising does nothing
    viewer.open_sample("napari-gr2r", "nuclei3d")
    _, widget = viewer.window.add_plugin_dock_widget("napari-gr2r", "GR2R Denoise")
    widget.settings_panel.advanced.expand(animate=False)
    widget.noise_section.expand(animate=False)
    with tempfile.TemporaryDirectory() as folder:
        # a camera's numbers, as 'napari-gr2r calibrate --gain 2 --offset 100 --read-noise 3'
        path = Path(folder) / "camera.noise.json"
        engine.NoiseCalibration.from_camera(2.0, 100.0, 3.0).save(path)
        widget.noise_panel.noise_source.load_file(path)
    _shots.wait(lambda: False, 1.5)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    content = widget.tabs.currentWidget().widget()
    content.grab().save(args.out)
    print(f"saved {args.out}; content {content.width()}x{content.height()}, dock "
          f"{widget.width()}x{widget.height()}, window {window.width()}x{window.height()}")
    viewer.close()


if __name__ == "__main__":
    main()
