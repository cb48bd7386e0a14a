"""Layers > Filter > Denoise menu commands, sample data, and the layer helpers."""

from __future__ import annotations

import numpy as np
import pytest

from napari_gr2r import engine
from napari_gr2r.sample_data import load_sample

TINY = dict(steps=20, width=8, depth=2, patch_size=32, batch_size=4, lr=3e-3)


def menu_action(menu, *path):
    """The QAction at ``path`` (menu titles, then the action's text) inside ``menu``.

    napari appends the plugin's display name to command titles: "Title (napari-gr2r)".
    """
    for title in path:
        found = [a for a in menu.actions()
                 if a.text().replace("&", "") in (title, f"{title} (napari-gr2r)")]
        assert found, f"{title!r} not in {[a.text() for a in menu.actions()]}"
        action = found[0]
        menu = action.menu() if action.menu() is not None else menu
    return action


@pytest.fixture
def notifications():
    from napari.utils.notifications import notification_manager

    start = len(notification_manager.records)
    return lambda: [str(n.message) for n in notification_manager.records[start:]]


def test_train_and_denoise_from_the_layers_menu(make_napari_viewer, qtbot, monkeypatch):
    import napari_gr2r._menu as menu_module

    monkeypatch.setattr(menu_module, "one_click_config",
                        lambda: engine.TrainConfig.from_preset("fast", **TINY))
    viewer = make_napari_viewer()
    noisy, _, _ = load_sample("nuclei2d")
    layer = viewer.add_image(noisy[:96, :96], name="cells", scale=(0.5, 0.5))
    action = menu_action(viewer.window.layers_menu, "Filter", "Denoise", "Train GR2R and denoise")
    action.trigger()
    qtbot.waitUntil(lambda: "cells [denoised]" in viewer.layers, timeout=60_000)
    out = viewer.layers["cells [denoised]"]
    assert out.data.shape == layer.data.shape
    assert tuple(out.scale) == (0.5, 0.5)
    np.testing.assert_array_equal(layer.data, noisy[:96, :96])


def test_denoise_with_saved_model_from_the_menu(make_napari_viewer, qtbot, monkeypatch, tmp_path):
    import napari_gr2r._menu as menu_module

    noisy, _, _ = load_sample("nuclei2d")
    model = engine.train(noisy[:64, :64], "YX", engine.TrainConfig.from_preset(
        "fast", steps=2, width=4, depth=1, patch_size=16, batch_size=2), device="cpu")
    path = tmp_path / "m.gr2r.pt"
    engine.save_model(model, path)
    monkeypatch.setattr(menu_module.QFileDialog, "getOpenFileName",
                        staticmethod(lambda *args, **kwargs: (str(path), "")))
    viewer = make_napari_viewer()
    viewer.add_image(noisy[:80, :72], name="cells")
    menu_action(viewer.window.layers_menu, "Filter", "Denoise", "Denoise with saved model…").trigger()
    qtbot.waitUntil(lambda: "cells [denoised]" in viewer.layers, timeout=30_000)
    assert viewer.layers["cells [denoised]"].data.shape == (80, 72)


def test_menu_denoising_outside_the_models_range_is_warned_about(make_napari_viewer, qtbot,
                                                                  monkeypatch, tmp_path,
                                                                  notifications):
    from tests.helpers import tiny_model

    import napari_gr2r._menu as menu_module

    path = tmp_path / "m.gr2r.pt"
    engine.save_model(tiny_model(), path)  # trained range 100..1100
    monkeypatch.setattr(menu_module.QFileDialog, "getOpenFileName",
                        staticmethod(lambda *args, **kwargs: (str(path), "")))
    viewer = make_napari_viewer()
    far = np.random.default_rng(0).integers(-128, 128, (48, 48), dtype=np.int8)
    viewer.add_image(far, name="int8")
    menu_action(viewer.window.layers_menu, "Filter", "Denoise", "Denoise with saved model…").trigger()
    qtbot.waitUntil(lambda: "int8 [denoised]" in viewer.layers, timeout=30_000)
    warned = [m for m in notifications() if "outside the range the model was trained on" in m]
    assert len(warned) == 1, notifications()


def test_menu_rejects_bad_layers_with_notifications(make_napari_viewer, notifications):
    from napari_gr2r._qt._commands import train_and_denoise

    viewer = make_napari_viewer()
    config = engine.TrainConfig.from_preset("fast", **TINY)
    viewer.add_labels(np.zeros((64, 64), np.uint8), name="mask")
    assert train_and_denoise(viewer, config) is None
    viewer.add_shapes(name="outline")
    assert train_and_denoise(viewer, config) is None
    viewer.add_image(np.zeros((8, 64), np.float32), name="thin")
    assert train_and_denoise(viewer, config) is None
    viewer.layers.selection.clear()
    assert train_and_denoise(viewer, config) is None
    messages = notifications()
    assert any("labels layer" in m for m in messages)
    assert any("shapes layer" in m for m in messages)
    assert any("too small" in m for m in messages)
    assert any("No layer selected" in m for m in messages)
    assert [layer.name for layer in viewer.layers] == ["mask", "outline", "thin"]


def test_menu_refers_large_layers_to_the_widget(make_napari_viewer, notifications, tmp_path):
    import dask.array as da

    from napari_gr2r._qt._commands import denoise_with_model, train_and_denoise

    viewer = make_napari_viewer()
    layer = viewer.add_image(da.zeros((64, 64), chunks=32, dtype=np.float32), name="lazy")
    assert train_and_denoise(viewer, engine.TrainConfig.from_preset("fast", **TINY)) is None
    model = engine.train(np.random.default_rng(0).random((32, 32), np.float32), "YX",
                         engine.TrainConfig.from_preset("fast", steps=1, width=4, depth=1,
                                                        patch_size=16, batch_size=2))
    path = tmp_path / "m.gr2r.pt"
    engine.save_model(model, path)
    assert denoise_with_model(viewer, str(path)) is None
    messages = [m for m in notifications() if "is large" in m]
    assert len(messages) == 2
    assert "GR2R Denoise" in messages[0]
    assert [lay.name for lay in viewer.layers] == ["lazy"]
    assert isinstance(layer.data, da.Array)


@pytest.mark.parametrize("name", ["nuclei2d", "nuclei3d", "fmd_confocal"])
def test_samples_open_noisy_and_clean(make_napari_viewer, name):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-gr2r", name)
    noisy, clean, info = load_sample(name)
    assert [layer.name for layer in viewer.layers] == [f"{name} clean", f"{name} noisy"]
    for layer, data in zip(viewer.layers, (clean, noisy)):
        np.testing.assert_array_equal(layer.data, data)
        np.testing.assert_allclose(layer.scale, info["scale"])
        assert [str(u) for u in layer.units] == ["micrometer"] * len(info["axes"])
    assert tuple(viewer.layers[-1].axis_labels) == tuple(info["axes"].lower())


def test_preview_slice_follows_the_view(make_napari_viewer):
    from napari_gr2r._qt._preview import current_slice, finish_preview

    viewer = make_napari_viewer()
    data = np.arange(40 * 3 * 20 * 24, dtype=np.float32).reshape(40, 3, 20, 24)
    layer = viewer.add_image(data, name="zcyx", scale=(2.0, 1.0, 0.5, 0.25))
    viewer.dims.set_point(0, 2.0 * 30)  # world coordinates: slice 30
    viewer.dims.set_point(1, 2)
    flat = current_slice(viewer, layer, "ZCYX", net_dims=2)
    assert flat.axes == "CYX"
    np.testing.assert_array_equal(finish_preview(flat, flat.data), data[30, 2])
    deep = current_slice(viewer, layer, "ZCYX", net_dims=3, depth_z=8)
    assert deep.axes == "ZCYX"
    assert deep.data.shape == (8, 3, 20, 24)
    np.testing.assert_array_equal(finish_preview(deep, deep.data), data[30, 2])
    assert deep.layer_kwargs["scale"] == (0.5, 0.25)
    viewer.dims.set_point(0, 2.0 * 39)  # near the end the slab is shifted, not cut
    deep = current_slice(viewer, layer, "ZCYX", net_dims=3, depth_z=8)
    assert deep.data.shape[0] == 8
    np.testing.assert_array_equal(finish_preview(deep, deep.data), data[39, 2])
