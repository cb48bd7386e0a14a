"""Screenshots of what a new user meets, at 1280×800, for docs/screenshots/.

Run under a display of that size
(``xvfb-run -a -s "-screen 0 1280x800x24" python scripts/screenshot_first_hour.py``). It saves
``first-screen.png`` (the 2D nuclei sample opened, then the dock), ``training-run.png`` (a short
run with its live preview), ``noise-section.png`` (the Noise and quality section after the run)
and ``error.png`` (an image with missing pixels: why Train is off).
"""

from __future__ import annotations

from pathlib import Path

import _shots
import napari
import numpy as np


def _window(viewer: napari.Viewer) -> None:
    window = viewer.window._qt_window
    window.move(0, 0)
    window.resize(1280, 800)  # no window manager under Xvfb: maximising does nothing


def _shoot(viewer: napari.Viewer, out: Path, name: str) -> None:
    _shots.wait(lambda: False, 1.0)
    viewer.screenshot(str(out / name), canvas_only=False, flash=False)
    print(f"saved {out / name}")


def main() -> None:
    parser = _shots.parser(__doc__, "screenshots", steps=300)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    viewer = napari.Viewer(title="napari-gr2r")
    _window(viewer)
    viewer.open_sample("napari-gr2r", "nuclei2d")
    _, widget = viewer.window.add_plugin_dock_widget("napari-gr2r", "GR2R Denoise")
    _shoot(viewer, out, "first-screen.png")

    settings, training = widget.settings_panel, widget.training_panel
    settings.steps.setValue(args.steps)
    settings.preview_every.setValue(20)
    settings.device.setCurrentIndex(settings.device.findData("cpu"))
    training.train_button.click()
    noisy = viewer.layers["nuclei2d noisy"]
    if not _shots.wait(lambda: f"{noisy.name} [preview]" in viewer.layers and any(
            s >= args.steps // 2 for s, _ in training.loss_plot.points("loss")), args.timeout):
        raise SystemExit("training did not reach half its steps in time")
    _shoot(viewer, out, "training-run.png")

    state = widget.state
    _shots.wait(lambda: not state.training and widget.noise_panel.view.report is not None
                and not state.assessing, args.timeout)
    widget.noise_section.expand(animate=False)
    _shots.wait(lambda: False, 0.5)
    area = widget.tabs.currentWidget()
    area.verticalScrollBar().setValue(widget.noise_section.y())
    _shoot(viewer, out, "noise-section.png")

    holes = np.array(noisy.data, np.float32)
    holes[100:104, 50:60] = np.nan
    viewer.add_image(holes, name="with missing pixels", scale=noisy.scale, units=noisy.units)
    widget.data_panel.layer_combo.setCurrentText("with missing pixels")
    area.verticalScrollBar().setValue(0)
    _shoot(viewer, out, "error.png")
    viewer.close()


if __name__ == "__main__":
    main()
