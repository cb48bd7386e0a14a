"""Image formats: what is read, what is refused (in one line naming the file), pixel sizes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from napari_gr2r.engine.errors import InputError
from napari_gr2r.engine.io.formats import check_output_suffix, read_image, write_image

RNG = np.random.default_rng(0)


def test_png_and_jpeg_are_read_with_their_axes(tmp_path):
    import imageio.v3 as iio

    gray = (RNG.random((40, 36)) * 65535).astype(np.uint16)
    iio.imwrite(tmp_path / "gray.png", gray)
    data, meta = read_image(tmp_path / "gray.png")
    np.testing.assert_array_equal(data, gray)
    assert meta["axes"] == "YX"
    rgba = (RNG.random((40, 36, 4)) * 255).astype(np.uint8)
    iio.imwrite(tmp_path / "rgba.png", rgba)
    data, meta = read_image(tmp_path / "rgba.png")
    np.testing.assert_array_equal(data, rgba[..., :3])  # alpha dropped
    assert meta["axes"] == "YXC"
    iio.imwrite(tmp_path / "photo.jpg", rgba[..., :3])
    data, meta = read_image(tmp_path / "photo.jpg")
    assert data.shape == (40, 36, 3)
    assert meta["axes"] == "YXC"


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("garbage.tif", b"this is not a TIFF", "garbage.tif is not a TIFF file"),
    ("empty.tif", b"", "empty.tif is not a TIFF file"),
    ("picture.tif", b"\x89PNG\r\n\x1a\n" + b"\0" * 20, "picture.tif is a PNG file, not a TIFF"),
    ("broken.png", b"\x89PNG\r\n\x1a\nxxxxxxxx", "broken.png cannot be read as a PNG"),
    ("scan.czi", b"ZISRAWFILE", "pip install bioio bioio-czi"),
    ("stack.nd2", b"\0" * 16, "pip install nd2"),
    ("series.lif", b"\0" * 16, "readlif"),
    ("notes.txt", b"hello", "notes.txt is not an image napari-gr2r can read"),
])
def test_unreadable_files_give_one_line_naming_the_file(tmp_path, name, content, expected):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError) as info:
        read_image(tmp_path / name)
    message = str(info.value)
    assert expected in message
    assert name in message
    assert "\n" not in message


def test_folder_and_missing_path_are_refused(tmp_path):
    with pytest.raises(InputError, match=r"is a folder, not an image.*reads TIFF"):
        read_image(tmp_path)
    with pytest.raises(InputError, match="No image at"):
        read_image(tmp_path / "nothing.tif")


def test_truncated_tiff_names_the_file(tmp_path):
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, RNG.random((64, 64)).astype(np.float32))
    path.write_bytes(path.read_bytes()[:600])
    with pytest.raises(InputError, match=r"cut\.tif cannot be read as a TIFF"):
        read_image(path)


@pytest.mark.parametrize("name", ["out.png", "out.jpg", "out.npy", "out"])
def test_unknown_output_extensions_are_refused(tmp_path, name):
    with pytest.raises(InputError, match="Cannot write"):
        check_output_suffix(tmp_path / name)
    with pytest.raises(InputError, match="Cannot write"):
        write_image(tmp_path / name, np.zeros((4, 4), np.float32), "YX")
    assert not (tmp_path / name).exists()
    assert check_output_suffix(tmp_path / "a.ome.tif") == "tiff"
    assert check_output_suffix(tmp_path / "a.zarr") == "zarr"


def test_ome_tiff_pixel_size_is_read_and_written(tmp_path):
    data = RNG.random((3, 40, 36)).astype(np.float32)
    tifffile.imwrite(tmp_path / "in.ome.tif", data, ome=True, metadata={
        "axes": "ZYX", "PhysicalSizeZ": 2.0, "PhysicalSizeY": 0.325, "PhysicalSizeX": 0.325})
    back, meta = read_image(tmp_path / "in.ome.tif")
    assert meta == {"axes": "ZYX", "scale": [2.0, 0.325, 0.325], "unit": "µm"}
    # an .ome.tif result is OME-TIFF again, readable by any OME reader
    write_image(tmp_path / "out.ome.tif", np.asarray(back), "ZYX", meta)
    with tifffile.TiffFile(tmp_path / "out.ome.tif") as tif:
        assert tif.is_ome
        assert 'PhysicalSizeX="0.325"' in tif.ome_metadata
    assert read_image(tmp_path / "out.ome.tif")[1] == meta
    # a plain .tif result is an ImageJ hyperstack: Fiji sees the slices, pixel size and spacing
    write_image(tmp_path / "out.tif", np.asarray(back), "ZYX", meta)
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        assert tif.is_imagej
        assert tif.imagej_metadata["slices"] == 3
        assert tif.imagej_metadata["unit"] == "micron"
        assert tif.imagej_metadata["spacing"] == 2.0
        num, den = tif.pages[0].tags["XResolution"].value
        assert den / num == pytest.approx(0.325)
    assert read_image(tmp_path / "out.tif")[1] == meta


def test_a_plain_tiff_result_out_of_imagejs_axis_order_has_its_pixel_size_per_centimetre(
        tmp_path):
    data = RNG.random((2, 3, 40, 36)).astype(np.float32)
    meta = {"axes": "CZYX", "scale": [1.0, 2.0, 0.5, 0.25], "unit": "µm"}
    write_image(tmp_path / "out.tif", data, "CZYX", meta)
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        page = tif.pages[0]
        assert not tif.is_imagej
        assert json.loads(page.description)["axes"] == "CZYX"
        assert page.tags["ResolutionUnit"].value == 3
        xn, xd = page.tags["XResolution"].value
        yn, yd = page.tags["YResolution"].value
        assert (xd / xn, yd / yn) == (pytest.approx(0.25e-4), pytest.approx(0.5e-4))
    back, read = read_image(tmp_path / "out.tif")
    np.testing.assert_array_equal(np.asarray(back), data)
    assert read == meta


def test_a_plain_tiff_result_of_samples_is_an_imagej_stack_of_frames(tmp_path):
    data = RNG.random((3, 40, 36)).astype(np.float32)
    meta = {"axes": "SYX", "scale": [1.0, 0.5, 0.5], "unit": "µm"}
    write_image(tmp_path / "out.tif", data, "SYX", meta)
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        assert tif.is_imagej
        assert tif.imagej_metadata["frames"] == 3
    back, read = read_image(tmp_path / "out.tif")
    np.testing.assert_array_equal(np.asarray(back), data)
    assert read == meta  # napari-gr2r reads its own axes back


def test_a_result_written_by_earlier_versions_is_read_with_its_pixel_size(tmp_path):
    data = RNG.random((3, 40, 36)).astype(np.float32)
    description = {"axes": "ZYX", "shape": [3, 40, 36], "scale": [2.0, 0.3, 0.3], "unit": "µm"}
    tifffile.imwrite(tmp_path / "old.tif", data, description=json.dumps(description),
                     metadata=None, photometric="minisblack")
    back, meta = read_image(tmp_path / "old.tif")
    np.testing.assert_array_equal(np.asarray(back), data)
    assert meta == {"axes": "ZYX", "scale": [2.0, 0.3, 0.3], "unit": "µm"}


def test_ome_tiff_result_of_channels_last_goes_to_ome_order(tmp_path):
    data = RNG.random((40, 36, 3)).astype(np.float32)
    write_image(tmp_path / "rgb.ome.tif", data, "YXC", {"scale": [0.5, 0.5, 1.0]})
    back, meta = read_image(tmp_path / "rgb.ome.tif")
    assert meta["axes"] == "CYX"
    np.testing.assert_array_equal(np.asarray(back), np.moveaxis(data, -1, 0))
    assert meta["scale"] == [1.0, 0.5, 0.5]


def test_imagej_and_centimetre_resolution_give_pixel_sizes(tmp_path):
    tifffile.imwrite(tmp_path / "ij.tif", np.zeros((3, 40, 36), np.uint16), imagej=True,
                     resolution=(4.0, 4.0), metadata={"spacing": 2.0, "unit": "um", "axes": "ZYX"})
    assert read_image(tmp_path / "ij.tif")[1] == {"axes": "ZYX", "scale": [2.0, 0.25, 0.25],
                                                  "unit": "µm"}
    tifffile.imwrite(tmp_path / "cm.tif", np.zeros((40, 36), np.uint16),
                     resolution=(20_000, 20_000), resolutionunit="CENTIMETER")
    meta = read_image(tmp_path / "cm.tif")[1]
    assert meta["scale"] == pytest.approx([0.5, 0.5])
    assert meta["unit"] == "µm"
    # a printing density per inch is not a pixel size
    tifffile.imwrite(tmp_path / "dpi.tif", np.zeros((40, 36), np.uint16), resolution=(72, 72))
    assert "scale" not in read_image(tmp_path / "dpi.tif")[1]


def test_ome_zarr_scale_is_read(tmp_path):
    import zarr

    root = zarr.open_group(str(tmp_path / "img.ome.zarr"), mode="w", zarr_format=2)
    root.create_array("0", shape=(4, 32, 32), dtype="uint16", chunks=(1, 32, 32))
    root.attrs["multiscales"] = [{
        "version": "0.4",
        "axes": [{"name": "z", "type": "space", "unit": "micrometer"},
                 {"name": "y", "type": "space", "unit": "micrometer"},
                 {"name": "x", "type": "space", "unit": "micrometer"}],
        "datasets": [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": [1.5, 0.2, 0.2]}]}],
    }]
    data, meta = read_image(tmp_path / "img.ome.zarr")
    assert data.shape == (4, 32, 32)
    assert meta == {"axes": "ZYX", "scale": [1.5, 0.2, 0.2], "unit": "µm"}
