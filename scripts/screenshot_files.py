"""Screenshot of the GR2R widget's many-images features, for the docs.

Run under a display (``xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot_files.py``).
It cuts the bundled 2D sample into four fields of view, trains from the widget on three of them
("Train on several layers"), writes the four fields as OME-TIFFs plus a damaged file into a
temporary folder, runs **Denoise files…** on that folder and grabs the window once the results
are open as layers.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import _shots
import napari
import tifffile

from napari_gr2r.sample_data import load_sample


def main() -> None:
    parser = _shots.parser(__doc__, "widget-files.png", steps=150)
    args = parser.parse_args()

    noisy, _, _ = load_sample("nuclei2d")
    corners = [(0, 0), (0, 128), (128, 0), (128, 128)]
    fields = [noisy[y:y + 128, x:x + 128] for y, x in corners]
    tmp = Path(tempfile.mkdtemp(prefix="gr2r-shot-"))
    raw = tmp / "raw"
    raw.mkdir()
    for i, field in enumerate(fields):
        tifffile.imwrite(raw / f"field{i}.ome.tif", field, ome=True,
                         metadata={"axes": "YX", "PhysicalSizeX": 0.2, "PhysicalSizeY": 0.2})
    (raw / "damaged.tif").write_bytes(b"\0 not a TIFF")

    viewer = napari.Viewer(title="napari-gr2r")
    viewer.window.resize(1550, 980)
    for i in range(3):
        viewer.add_image(fields[i], name=f"field{i}", scale=(0.2, 0.2))
    _, widget = viewer.window.add_plugin_dock_widget("napari-gr2r", "GR2R Denoise")
    widget.data_panel.layer_combo.setCurrentText("field0")
    widget.data_panel.several.setChecked(True)
    widget.data_panel.set_more_layers(["field1", "field2"])
    widget.settings_panel.preset.setCurrentText("fast")
    widget.settings_panel.steps.setValue(args.steps)
    widget.settings_panel.preview_every.setValue(0)
    widget.settings_panel.device.setCurrentIndex(widget.settings_panel.device.findData("cpu"))
    widget.training_panel.train_button.click()
    if not _shots.wait(lambda: widget.state.model is not None and not widget.state.training, args.timeout):
        raise SystemExit("training did not end in time")

    widget.denoise_panel.files_button.click()
    panel = widget.denoise_panel.files_panel
    panel.add_paths([str(raw)])
    panel.set_output(str(tmp / "denoised"))
    panel.run_button.click()
    if not _shots.wait(lambda: not panel.running, args.timeout):
        raise SystemExit("denoising the files did not end in time")
    viewer.add_image(fields[3], name="field3 (held out)", scale=(0.2, 0.2))
    for layer in viewer.layers:
        layer.visible = layer.name in ("field3 (held out)", "field3 [denoised]")
    getattr(viewer, "canvas", viewer).grid.enabled = True
    viewer.reset_view()
    _shots.wait(lambda: False, 1.0)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(args.out, canvas_only=False, flash=False)
    print(f"saved {args.out}; {panel.message.text()}")
    viewer.close()


if __name__ == "__main__":
    main()
