"""``context="auto"``: how much neighbouring planes share, measured from the noisy data."""

from __future__ import annotations

import numpy as np
import pytest

from napari_gr2r.engine import TrainConfig, load_model, train
from napari_gr2r.engine.data.collection import SourceSet
from napari_gr2r.engine.data.redundancy import neighbour_similarity, suggest_context
from napari_gr2r.engine.errors import ConfigError
from napari_gr2r.sample_data import load_sample


def fields(n: int, same: bool, sd: float, seed: int = 0) -> np.ndarray:
    """``n`` planes of the nuclei reference (one field again and again, or ``n`` different
    crops), with independent Gaussian noise of ``sd`` in every plane."""
    _, clean, _ = load_sample("nuclei2d")
    clean = clean.astype(np.float32)
    clean = (clean - clean.min()) / (clean.max() - clean.min()) * 200
    starts = [(0, 0)] * n if same else [(y, x) for y in (0, 90, 170) for x in (0, 90, 170)][:n]
    planes = np.stack([np.rot90(clean[y:y + 80, x:x + 80], 0 if same else k)
                       for k, (y, x) in enumerate(starts)])
    return planes + np.random.default_rng(seed).normal(0, sd, planes.shape).astype(np.float32)


@pytest.mark.parametrize("sd", [5.0, 60.0])
def test_repeated_captures_share_everything_at_any_noise_level(sd):
    source = SourceSet([fields(6, same=True, sd=sd)], "TYX").sources[0]
    assert neighbour_similarity(source, "T") > 0.9
    assert suggest_context(SourceSet([fields(6, same=True, sd=sd)], "TYX"), 2) == 3


def test_unrelated_fields_get_no_context_and_neither_do_single_planes_or_3d_networks():
    assert suggest_context(SourceSet([fields(6, same=False, sd=10)], "TYX"), 2) == 0
    same = SourceSet([fields(6, same=True, sd=10)], "ZYX")
    assert suggest_context(same, 3) == 0  # a 3D network sees its Z neighbours itself
    assert suggest_context(SourceSet([fields(1, same=True, sd=10)[0]], "YX"), 2) == 0
    # several images: the least redundant one decides
    mixed = SourceSet([fields(6, same=True, sd=10), fields(6, same=False, sd=10)], "TYX")
    assert suggest_context(mixed, 2) == 0


def test_training_with_auto_records_the_planes_it_chose(tmp_path):
    cfg = TrainConfig.from_preset("fast", width=4, steps=2, patch_size=16, batch_size=2,
                                  context="auto")
    model = train(fields(5, same=True, sd=10), axes="TYX", config=cfg)
    assert model.config.context == 3
    assert model.net.in_channels == 7
    path = tmp_path / "m.gr2r.pt"
    from napari_gr2r.engine import save_model

    save_model(model, path)
    loaded = load_model(path)
    assert loaded.config.context == 3
    # continuing with "auto" keeps the network's own planes
    again = train(fields(5, same=False, sd=10), axes="TYX", model=loaded, config=cfg)
    assert again.config.context == 3
    unrelated = train(fields(5, same=False, sd=10), axes="TYX", config=cfg)
    assert unrelated.config.context == 0
    with pytest.raises(ConfigError, match="auto"):
        TrainConfig(context="some")


def test_cli_context_auto(tmp_path, capsys):
    import tifffile

    from napari_gr2r.cli import main

    path = tmp_path / "captures.tif"
    tifffile.imwrite(path, np.clip(fields(4, same=True, sd=10) + 20, 0, None).astype(np.uint16),
                     photometric="minisblack")
    out = tmp_path / "m.gr2r.pt"
    code = main(["train", str(path), "--axes", "TYX", "--preset", "fast", "--steps", "2",
                 "--context", "auto", "-o", str(out)])
    err = capsys.readouterr().err
    assert code in (0, None), err
    assert "seeing 3 neighbouring plane(s) on each side" in err
    assert load_model(out).config.context == 3
    with pytest.raises(SystemExit) as info:  # argparse's usage error, status 2
        main(["train", str(path), "--axes", "TYX", "--context", "some", "-o",
              str(tmp_path / "n.gr2r.pt")])
    assert info.value.code == 2
    assert "'auto', not 'some'" in capsys.readouterr().err
