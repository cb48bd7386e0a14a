"""Export to BioImage Model Zoo… in the real widget: disabled without a model, exports with one."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from tests.helpers import tiny

from napari_gr2r import engine

pytest.importorskip("bioimageio.spec")

PLUGIN, WIDGET = "napari-gr2r", "GR2R Denoise"


def test_export_button_follows_the_model_and_writes_a_package(make_napari_viewer, qtbot,
                                                              tmp_path, gaussian2d):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    viewer.add_image(gaussian2d, name="noisy")
    assert widget.export_panel.export_button.text() == "Export to BioImage Model Zoo…"
    assert not widget.export_panel.export_button.isEnabled()

    model_file = engine.save_model(engine.train(gaussian2d, "YX", tiny(steps=3, width=4)),
                                   tmp_path / "m.gr2r.pt")
    widget.denoise_panel.load_model(str(model_file))
    assert widget.export_panel.export_button.isEnabled()

    worker = widget.export_panel.export(str(tmp_path / "nuclei"))  # the dialog's answer
    assert worker is not None
    assert not widget.export_panel.export_button.isEnabled()  # one export at a time
    qtbot.waitUntil(lambda: not widget.export_panel.exporting, timeout=120_000)
    package = tmp_path / "nuclei.zip"
    assert package.is_file()
    assert str(package) in widget.state.message.text()
    assert widget.export_panel.export_button.isEnabled()
    # the chosen layer (with the model's axes) is the package's test image
    with zipfile.ZipFile(package) as zf, zf.open("test_input.npy") as fh:
        test_input = np.load(fh)
    np.testing.assert_array_equal(test_input[0, 0], gaussian2d[:96, :96])
    assert engine.load_model(package).normalization == engine.load_model(model_file).normalization
