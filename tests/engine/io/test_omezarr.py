"""Zarr results as OME-Zarr images: judged by an OME-Zarr validator, read back with their pixel
size, earlier results (plain arrays) still resumed."""

from __future__ import annotations

import json

import numpy as np
import tifffile
import zarr
from ome_zarr_models.v05 import Image

from napari_gr2r.engine import (
    denoise,
    denoise_to_zarr,
    iter_denoise_to_zarr,
    open_result,
    read_image,
    write_image,
)
from napari_gr2r.engine.inference.outofcore import read_state
from napari_gr2r.engine.io.omezarr import fits_ome_zarr, ome_metadata
from tests.helpers import tiny_model


def noisy(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.poisson(300, shape) + 100).astype(np.uint16)


def test_a_result_is_an_ome_zarr_image_with_the_inputs_pixel_size(tmp_path):
    image = noisy((3, 40, 48))
    src = tmp_path / "stack.tif"
    tifffile.imwrite(src, image, imagej=True, resolution=(10, 10),
                     metadata={"axes": "ZYX", "unit": "micron", "spacing": 0.5})
    out = tmp_path / "out.zarr"
    model = tiny_model(dims=2, axes="ZYX")
    arr = denoise_to_zarr(model, src, None, out)

    # an OME-Zarr validator accepts it and finds the scale and units
    multiscale = Image.from_zarr(zarr.open_group(str(out), mode="r")) \
        .ome_attributes.multiscales[0]
    assert [(a.name, a.type, a.unit) for a in multiscale.axes] == [
        ("z", "space", "micrometer"), ("y", "space", "micrometer"), ("x", "space", "micrometer")]
    assert list(multiscale.datasets[0].coordinateTransformations[0].scale) == [0.5, 0.1, 0.1]
    # the pixels and napari-gr2r's record are in its level 0
    assert arr.path == "0"
    assert read_state(open_result(out))["complete"]
    np.testing.assert_allclose(open_result(out)[:], denoise(model, image, "ZYX"), atol=1e-2)
    data, meta = read_image(out)
    assert meta == {"axes": "ZYX", "scale": [0.5, 0.1, 0.1], "unit": "µm"}
    # a TIFF written from it keeps the pixel size, in Fiji's terms too
    write_image(tmp_path / "again.tif", np.asarray(data), "ZYX", meta)
    with tifffile.TiffFile(tmp_path / "again.tif") as tif:
        assert tif.imagej_metadata["unit"] == "micron"
        assert tif.imagej_metadata["spacing"] == 0.5


def test_axes_outside_ome_zarrs_order_give_a_plain_array(tmp_path):
    assert fits_ome_zarr("TCZYX")
    assert fits_ome_zarr("SYX")
    assert fits_ome_zarr("CYX")
    assert not fits_ome_zarr("YXC")
    assert not fits_ome_zarr("ZCYX")
    assert not fits_ome_zarr("SCYX")
    image = noisy((32, 40, 3))
    out = tmp_path / "rgb.zarr"
    denoise_to_zarr(tiny_model(channels=3, axes="YXC"), image, "YXC", out,
                    pixel_size={"scale": [0.2, 0.2, 1.0], "unit": "µm"})
    assert isinstance(zarr.open(str(out), mode="r"), zarr.Array)
    assert read_image(out)[1] == {"axes": "YXC", "scale": [0.2, 0.2, 1.0], "unit": "µm"}


def test_samples_channels_and_units_in_the_metadata():
    ome = ome_metadata("SYX", {"scale": [3.0, 20.0, 20.0], "unit": "nm"}, "x")["multiscales"][0]
    assert ome["axes"][0] == {"name": "s"}  # independent images: no OME-Zarr type
    assert ome["axes"][1] == {"name": "y", "type": "space", "unit": "nanometer"}
    assert ome["datasets"][0]["coordinateTransformations"][0]["scale"] == [1.0, 20.0, 20.0]
    # a unit that is not a known length is left out, never copied
    ome = ome_metadata("YX", {"scale": [2.0, 2.0], "unit": "pixel"}, "x")["multiscales"][0]
    assert ome["axes"][0] == {"name": "y", "type": "space"}


def test_a_result_of_an_earlier_version_is_resumed_and_replaced_cleanly(tmp_path):
    image = noisy((64, 64))
    model = tiny_model()
    out = tmp_path / "old.zarr"
    # a result as versions before OME-Zarr results wrote it: the array at the store's root
    old = zarr.create_array(store=str(out), shape=image.shape, chunks=(32, 32),
                            dtype="float32", fill_value=0.0)
    denoise_to_zarr(model, image, "YX", old)
    steps = list(iter_denoise_to_zarr(model, image, "YX", out))
    assert steps[0].skipped == steps[0].total == 4  # found complete: nothing denoised again
    assert isinstance(zarr.open(str(out), mode="r"), zarr.Array)
    # replaced on request: an OME-Zarr image, nothing of the old array left at the root
    denoise_to_zarr(tiny_model(seed=1), image, "YX", out, overwrite=True)
    root = json.loads((out / "zarr.json").read_text())
    assert root["node_type"] == "group"
    assert "ome" in root["attributes"]
    assert not (out / "c").exists()
    np.testing.assert_allclose(open_result(out)[:], denoise(tiny_model(seed=1), image, "YX"),
                               atol=1e-2)


def test_someone_elses_ome_zarr_image_is_never_replaced(tmp_path):
    import pytest

    from napari_gr2r.engine import InputError

    image = noisy((64, 64))
    out = tmp_path / "theirs.ome.zarr"
    group = zarr.open_group(str(out), mode="w")
    group.create_array("0", data=np.full((64, 64), 7, np.uint16))
    group.create_group("labels")
    group.attrs["ome"] = ome_metadata("YX", None, "theirs")
    for overwrite in (False, True):
        with pytest.raises(InputError, match="did not write"):
            denoise_to_zarr(tiny_model(), image, "YX", out, overwrite=overwrite)
    assert (zarr.open_array(str(out / "0"), mode="r")[:] == 7).all()
    assert (out / "labels").exists()
