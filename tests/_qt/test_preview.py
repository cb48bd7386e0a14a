"""The live preview follows the plane napari displays, whichever dimensions those are."""

from __future__ import annotations

import numpy as np
import pytest

from napari_gr2r import engine


@pytest.fixture(scope="module")
def stack_and_model():
    rng = np.random.default_rng(5)
    stack = rng.random((12, 100, 40), np.float32)
    model = engine.train(stack, "ZYX", engine.TrainConfig.from_preset(
        "fast", steps=2, width=4, depth=2, patch_size=16, batch_size=2, net_dims="2d",
        val_fraction=0.0), device="cpu")
    return stack, model


def test_preview_of_a_zx_view_is_the_viewed_plane(make_napari_viewer, stack_and_model):
    from napari_gr2r._qt._preview import current_slice, finish_preview

    stack, model = stack_and_model
    viewer = make_napari_viewer()
    layer = viewer.add_image(stack, name="s", scale=(2.0, 0.5, 0.25), translate=(1.0, 2.0, 3.0))
    viewer.dims.order = (1, 0, 2)  # show Z (rows) and X (columns), slide along Y
    viewer.dims.set_point(1, 2.0 + 0.5 * 70)  # world coordinates: row 70
    request = current_slice(viewer, layer, "ZYX", net_dims=2)
    assert request.axes == "ZYX"
    assert request.data.shape == (12, 64, 40)  # every Z plane, a window of rows around 70
    preview = finish_preview(request, engine.denoise(model, request.data, axes="ZYX",
                                                     device="cpu"))
    assert preview.shape == (12, 1, 40)
    full = engine.denoise(model, stack, axes="ZYX", device="cpu")
    np.testing.assert_allclose(preview, full[:, 70:71], rtol=1e-4, atol=1e-5)
    # the preview keeps the layer's dimensions and lies on the viewed row
    assert request.layer_kwargs["scale"] == (2.0, 0.5, 0.25)
    assert request.layer_kwargs["translate"] == (1.0, 2.0 + 0.5 * 70, 3.0)
    shown = viewer.add_image(preview, **request.layer_kwargs)
    np.testing.assert_allclose(shown.data_to_world((0, 0, 0)), (1.0, 37.0, 3.0))


def test_preview_falls_back_to_the_yx_plane(make_napari_viewer, stack_and_model):
    from napari_gr2r._qt._preview import current_slice, finish_preview

    stack, _ = stack_and_model
    viewer = make_napari_viewer()
    layer = viewer.add_image(stack, name="s")
    viewer.dims.set_point(0, 5)
    usual = current_slice(viewer, layer, "ZYX", net_dims=2)  # Y and X shown
    assert usual.axes == "YX"
    np.testing.assert_array_equal(finish_preview(usual, usual.data), stack[5])
    viewer.dims.ndisplay = 3  # a 3D view: the YX plane at the current Z
    volume = current_slice(viewer, layer, "ZYX", net_dims=2)
    assert volume.axes == "YX"
    np.testing.assert_array_equal(finish_preview(volume, volume.data), stack[5])
    viewer.dims.ndisplay = 2
    viewer.dims.order = (2, 0, 1)  # Z and Y shown, a 3D network: a window of columns
    viewer.dims.set_point(2, 7)
    deep = current_slice(viewer, layer, "ZYX", net_dims=3)
    assert deep.axes == "ZYX"
    assert deep.data.shape == (12, 100, 40)  # the X window is wider than the image
    assert finish_preview(deep, deep.data).shape == (12, 100, 1)
    np.testing.assert_array_equal(finish_preview(deep, deep.data)[..., 0], stack[:, :, 7])
