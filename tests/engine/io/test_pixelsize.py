"""Pixel sizes read from TIFF (our JSON, OME-XML, ImageJ, resolution tags) and OME-Zarr."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from napari_gr2r.engine.errors import InputError
from napari_gr2r.engine.io.pixelsize import check_tiff, ome_zarr_scale, tiff_metadata

IMAGE = np.zeros((4, 16, 16), np.uint16)


def test_our_json_description_wins(tmp_path):
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, IMAGE, description=json.dumps(
        {"axes": "zyx", "scale": [2.0, 0.5, 0.5], "unit": "µm"}))
    meta = tiff_metadata(path, None)
    assert meta == {"axes": "ZYX", "scale": [2.0, 0.5, 0.5], "unit": "µm"}


def test_ome_xml_physical_sizes(tmp_path):
    path = tmp_path / "a.ome.tif"
    tifffile.imwrite(path, IMAGE, ome=True, metadata={
        "axes": "ZYX", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.25, "PhysicalSizeZ": 1.5})
    meta = tiff_metadata(path, "ZYX")
    assert meta["scale"] == pytest.approx([1.5, 0.25, 0.25])
    assert meta["unit"] == "µm"


def test_imagej_spacing_and_unit(tmp_path):
    path = tmp_path / "ij.tif"
    tifffile.imwrite(path, IMAGE, imagej=True, resolution=(1 / 0.2, 1 / 0.2),
                     metadata={"spacing": 3.0, "unit": "micron", "axes": "ZYX"})
    meta = tiff_metadata(path, "ZYX")
    assert meta["scale"] == pytest.approx([3.0, 0.2, 0.2])
    assert meta["unit"] == "µm"


def test_a_printing_density_is_not_a_pixel_size(tmp_path):
    path = tmp_path / "dpi.tif"
    tifffile.imwrite(path, IMAGE[0], resolution=(300, 300), resolutionunit="INCH")
    assert tiff_metadata(path, "YX") == {}


def test_a_resolution_per_centimetre_is(tmp_path):
    path = tmp_path / "cm.tif"
    tifffile.imwrite(path, IMAGE[0], resolution=(20_000, 20_000), resolutionunit="CENTIMETER")
    meta = tiff_metadata(path, "YX")
    assert meta["scale"] == pytest.approx([0.5, 0.5])
    assert meta["unit"] == "µm"


def test_a_truncated_tiff_is_found(tmp_path):
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, np.ones((64, 64), np.uint16))
    check_tiff(path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(InputError, match="damaged"):
        check_tiff(path)


def test_ome_zarr_scale_and_unit(tmp_path):
    import zarr

    root = zarr.open_group(str(tmp_path / "img.zarr"), mode="w")
    root.create_array("0", shape=(4, 8, 8), dtype="u2")
    root.attrs["multiscales"] = [{
        "axes": [{"name": "z", "type": "space", "unit": "micrometer"},
                 {"name": "y", "type": "space", "unit": "micrometer"},
                 {"name": "x", "type": "space", "unit": "micrometer"}],
        "datasets": [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": [2.0, 0.5, 0.5]}]}]}]
    meta = ome_zarr_scale(str(tmp_path / "img.zarr"), 3)
    assert meta == {"scale": [2.0, 0.5, 0.5], "unit": "µm"}
    assert ome_zarr_scale(str(tmp_path / "img.zarr" / "0"), 3) == {}


def test_length_units_in_any_spelling_reach_the_tiff_resolution(tmp_path):
    from napari_gr2r.engine.io.pixelsize import length_unit, plain_tiff_layout

    for spelling in ("micron", "um", "µm", "μm", "micrometer", "\\u00B5m"):
        assert length_unit(spelling) == "µm"
    assert length_unit("pixel") is None
    for unit in ("micrometer", "μm"):
        kwargs = plain_tiff_layout("YX", 100, {"scale": [0.25, 0.25], "unit": unit})
        assert kwargs["resolution"] == (4.0, 4.0)
        assert kwargs["metadata"]["unit"] == "micron"
    kwargs = plain_tiff_layout("YX", 100, {"scale": [0.25, 0.25], "unit": "pixel"})
    assert "resolution" not in kwargs


def test_the_time_between_frames_round_trips_through_every_format(tmp_path):
    """A time-lapse keeps its frame interval: read from a Fiji hyperstack, written to TIFF,
    OME-TIFF and OME-Zarr and read back, as each format's other readers see it."""
    import zarr

    from napari_gr2r.engine.io.formats import read_image, write_image
    from napari_gr2r.engine.io.omezarr import create_result, tag_result

    movie = np.zeros((3, 2, 16, 16), np.float32)
    tifffile.imwrite(tmp_path / "fiji.tif", movie, imagej=True, resolution=(5, 5),
                     metadata={"axes": "TCYX", "unit": "micron", "finterval": 250.0,
                               "tunit": "msec"})
    meta = read_image(tmp_path / "fiji.tif")[1]
    assert meta == {"axes": "TCYX", "scale": [250.0, 1.0, 0.2, 0.2], "unit": "µm",
                    "time_unit": "ms"}
    write_image(tmp_path / "r.tif", movie, "TCYX", meta)
    with tifffile.TiffFile(tmp_path / "r.tif") as tif:  # as Fiji reads it
        assert (tif.imagej_metadata["finterval"], tif.imagej_metadata["tunit"]) == (250.0, "ms")
    write_image(tmp_path / "r.ome.tif", movie, "TCYX", meta)
    with tifffile.TiffFile(tmp_path / "r.ome.tif") as tif:
        assert 'TimeIncrement="250.0" TimeIncrementUnit="ms"' in tif.ome_metadata
    arr = create_result(str(tmp_path / "r.zarr"), "TCYX", movie.shape, movie.shape)
    tag_result(arr, "TCYX", meta)
    axis = zarr.open_group(str(tmp_path / "r.zarr")).attrs["ome"]["multiscales"][0]["axes"][0]
    assert axis == {"name": "t", "type": "time", "unit": "millisecond"}
    for name in ("r.tif", "r.ome.tif", "r.zarr"):
        back = read_image(tmp_path / name)[1]
        assert back["scale"] == pytest.approx(meta["scale"]), name
        assert back["time_unit"] == "ms", name
    # without napari-gr2r's record, from the OME-Zarr metadata alone
    assert ome_zarr_scale(str(tmp_path / "r.zarr"), 4)["time_unit"] == "millisecond"


def test_a_frame_interval_alone_and_samples_written_as_frames(tmp_path):
    from napari_gr2r.engine.io.formats import read_image, write_image
    from napari_gr2r.engine.io.pixelsize import time_unit

    for spelling, short in (("sec", "s"), ("second", "s"), ("msec", "ms"), ("minutes", "min"),
                            ("hour", "h"), ("us", "µs"), ("pixel", None), ("µm", None)):
        assert time_unit(spelling) == short
    stack = np.zeros((3, 16, 16), np.float32)
    tifffile.imwrite(tmp_path / "t.tif", stack, imagej=True,
                     metadata={"axes": "TYX", "finterval": 2.0})
    assert read_image(tmp_path / "t.tif")[1] == {"axes": "TYX", "scale": [2.0, 1.0, 1.0],
                                                 "time_unit": "s"}
    # an interval in a unit that is not a time (ImageJ allows any text) is not taken for one
    tifffile.imwrite(tmp_path / "f.tif", stack, imagej=True,
                     metadata={"axes": "TYX", "finterval": 2.0, "tunit": "frame"})
    assert read_image(tmp_path / "f.tif")[1] == {"axes": "TYX"}
    # independent images stored as ImageJ frames have no time between them
    write_image(tmp_path / "s.tif", stack, "SYX",
                {"scale": [1.0, 0.2, 0.2], "unit": "µm", "time_unit": "s"})
    with tifffile.TiffFile(tmp_path / "s.tif") as tif:
        assert "finterval" not in tif.imagej_metadata
