"""Screenshot of the GR2R Denoise dock at 1280×800: the 2D nuclei sample loaded, Advanced open.

Run under a display of that size
(``xvfb-run -a -s "-screen 0 1280x800x24" python scripts/screenshot_widget.py``). It shows the
first screen a user meets, to check that the dock fits a laptop screen.
"""

from __future__ import annotations

from pathlib import Path

import _shots
import napari


def main() -> None:
    parser = _shots.parser(__doc__, "screenshots/widget-first-screen.png", steps=0)
    parser.add_argument("--advanced", action="store_true", help="open the Advanced section")
    parser.add_argument("--content", help="also save the whole scrolling content of the dock here")
    args = parser.parse_args()
    viewer = napari.Viewer(title="napari-gr2r")
    window = viewer.window._qt_window
    window.move(0, 0)
    window.resize(1280, 800)  # no window manager under Xvfb: maximising does nothing
    viewer.open_sample("napari-gr2r", "nuclei2d")
    _, widget = viewer.window.add_plugin_dock_widget("napari-gr2r", "GR2R Denoise")
    settings = widget.settings_panel
    if args.advanced:
        settings.advanced.expand(animate=False)
    _shots.wait(lambda: False, 1.5)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(args.out, canvas_only=False, flash=False)
    if args.content:
        widget.tabs.currentWidget().widget().grab().save(args.content)
    print(f"saved {args.out}; dock {widget.width()}x{widget.height()}, "
          f"window {viewer.window._qt_window.width()}x{viewer.window._qt_window.height()}")
    viewer.close()


if __name__ == "__main__":
    main()
