"""File > Save with napari-gr2r's writer: the saved TIFF keeps the layer's pixel size."""

from __future__ import annotations

import numpy as np
import tifffile

from napari_gr2r import engine


def _stack() -> np.ndarray:
    return np.random.default_rng(0).normal(100, 10, (5, 32, 48)).astype(np.float32)


def test_a_saved_layer_keeps_its_pixel_size_where_naparis_writer_loses_it(make_napari_viewer,
                                                                          tmp_path):
    viewer = make_napari_viewer()
    data = _stack()
    viewer.add_image(data, name="cells [denoised]", scale=(0.5, 0.1, 0.1),
                     units=("µm", "µm", "µm"))
    path = tmp_path / "saved.tif"
    assert viewer.layers.save(str(path), plugin="napari-gr2r") == [str(path)]
    with tifffile.TiffFile(path) as tif:  # as Fiji reads it: a hyperstack of 5 slices
        assert tif.is_imagej
        assert tif.imagej_metadata["slices"] == 5
        assert tif.imagej_metadata["unit"] == "micron"
        assert tif.imagej_metadata["spacing"] == 0.5
        assert tif.pages[0].tags["XResolution"].value == (10, 1)
    pixels, meta = engine.read_image(path)
    np.testing.assert_array_equal(np.asarray(pixels), data)
    assert meta == {"axes": "ZYX", "scale": [0.5, 0.1, 0.1], "unit": "µm"}
    # napari's own writer keeps the pixels only
    viewer.layers.save(str(tmp_path / "builtin.tif"), plugin="napari")
    assert "scale" not in engine.read_image(tmp_path / "builtin.tif")[1]


def test_a_time_lapse_saves_as_frames_and_ome_tiff_keeps_the_size(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    viewer.add_image(_stack(), name="movie", scale=(30.0, 0.2, 0.2), units=("s", "µm", "µm"))
    viewer.layers.save(str(tmp_path / "movie.tif"), plugin="napari-gr2r")
    with tifffile.TiffFile(tmp_path / "movie.tif") as tif:
        assert tif.imagej_metadata["frames"] == 5  # time, not depth: the unit says so
        assert tif.imagej_metadata["finterval"] == 30.0  # Fiji's frame interval, in seconds
    viewer.layers.save(str(tmp_path / "movie.ome.tif"), plugin="napari-gr2r")
    meta = engine.read_image(tmp_path / "movie.ome.tif")[1]
    assert meta == {"axes": "TYX", "scale": [30.0, 0.2, 0.2], "unit": "µm", "time_unit": "s"}


def test_a_denoised_layer_says_how_to_save_it_and_saves_with_its_pixel_size(make_napari_viewer,
                                                                            qtbot, tmp_path):
    from tests.helpers import tiny_model

    from napari_gr2r._qt._denoise_panel import SAVE_HINT

    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-gr2r", "GR2R Denoise")
    noisy = (np.random.default_rng(1).poisson(300, (48, 64)) + 100).astype(np.uint16)
    viewer.add_image(noisy, name="cells", scale=(0.13, 0.13), units=("µm", "µm"))
    engine.save_model(tiny_model(), tmp_path / "m.gr2r.pt")
    widget.denoise_panel.load_model(str(tmp_path / "m.gr2r.pt"))
    widget.denoise_panel.start()
    qtbot.waitUntil(lambda: "cells [denoised]" in viewer.layers and not widget.state.denoising,
                    timeout=30_000)
    assert widget.state.message.text() == f"Denoised 'cells' into 'cells [denoised]'.{SAVE_HINT}"
    result = viewer.layers["cells [denoised]"]
    viewer.layers.selection = {result}
    viewer.layers.save(str(tmp_path / "cells_dn.tif"), selected=True, plugin="napari-gr2r")
    pixels, meta = engine.read_image(tmp_path / "cells_dn.tif")
    np.testing.assert_array_equal(np.asarray(pixels), result.data)
    assert meta == {"axes": "YX", "scale": [0.13, 0.13], "unit": "µm"}


def test_a_lazy_layer_larger_than_memory_is_refused_in_one_line(tmp_path):
    import dask.array as da
    import pytest

    from napari_gr2r._writer import write_image_layer

    huge = da.zeros((2**20, 2**14, 2**14), dtype="float32", chunks=(1, 1024, 1024))  # 1 PiB
    with pytest.raises(MemoryError, match="more than half the free memory"):
        write_image_layer(str(tmp_path / "huge.tif"), huge, {"scale": (1.0, 0.5, 0.5)})
    assert not (tmp_path / "huge.tif").exists()


def test_a_time_lapse_result_opens_with_its_frame_interval(make_napari_viewer, tmp_path):
    from napari_gr2r._qt._results import open_result_file

    path = tmp_path / "movie.ome.tif"
    engine.write_image(path, _stack(), "TYX",
                       {"scale": [0.5, 0.2, 0.2], "unit": "µm", "time_unit": "min"})
    viewer = make_napari_viewer()
    (layer,) = open_result_file(viewer, str(path))
    assert list(layer.scale) == [0.5, 0.2, 0.2]
    assert [str(u) for u in layer.units] == ["minute", "micrometer", "micrometer"]
