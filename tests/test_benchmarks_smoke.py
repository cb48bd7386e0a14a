"""The benchmark suites at smoke size, and the pieces they are built from.

The full runs are commands (``python -m benchmarks.quality``, ``python -m benchmarks.speed``);
these tests keep them working. CAREamics and BM3D are optional (the ``bench`` extra): their
methods are skipped with a note when they are not installed.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

pytest.importorskip("skimage")

from benchmarks import (
    baselines,
    ensemble_selection,
    mc_inference,
    quality,
    realnoise,
    realnoise_levers,
    realnoise_members,
    speed,
)
from benchmarks.common import NOISES, correlate_periodic, gaussian_kernel, psnr

# --------------------------------------------------------------------------------------------
# noise models


def test_gaussian_noise_has_the_stated_level():
    clean = np.full((256, 256), 0.5, np.float32)
    noisy, scaled = NOISES["gaussian"].apply(clean, seed=1)
    assert np.allclose(scaled, 127.5)
    assert np.std(noisy - scaled) == pytest.approx(25, rel=0.02)
    assert psnr(scaled, noisy, 255) == pytest.approx(20 * math.log10(255 / 25), abs=0.1)


def test_poisson_gaussian_noise_variance_follows_the_signal():
    noise = NOISES["poisson-gaussian"]
    for level in (0.1, 1.0):
        clean = np.full((256, 256), level, np.float32)
        noisy, scaled = noise.apply(clean, seed=2)
        expected = noise.gain * scaled.mean() + noise.sigma**2
        assert np.var(noisy - scaled) == pytest.approx(expected, rel=0.05)


def test_correlated_noise_keeps_sigma_and_correlates_neighbours():
    clean = np.zeros((256, 256), np.float32)
    noisy, _ = NOISES["correlated"].apply(clean, seed=3)
    assert np.std(noisy) == pytest.approx(25, rel=0.05)
    neighbours = np.corrcoef(noisy[:, :-1].ravel(), noisy[:, 1:].ravel())[0, 1]
    assert neighbours > 0.5
    white, _ = NOISES["gaussian"].apply(clean, seed=3)
    assert abs(np.corrcoef(white[:, :-1].ravel(), white[:, 1:].ravel())[0, 1]) < 0.05


def test_periodic_correlation_with_a_delta_is_identity():
    image = np.random.default_rng(0).random((16, 20))
    delta = np.zeros((5, 5))
    delta[2, 2] = 1
    assert np.allclose(correlate_periodic(image, delta), image)
    assert np.sum(gaussian_kernel() ** 2) == pytest.approx(1)


def test_noise_is_reproducible():
    clean = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    a, _ = NOISES["poisson-gaussian"].apply(clean, seed=5)
    b, _ = NOISES["poisson-gaussian"].apply(clean, seed=5)
    c, _ = NOISES["poisson-gaussian"].apply(clean, seed=6)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


# --------------------------------------------------------------------------------------------
# baselines


def test_neighbor_subsample_takes_two_different_neighbours_per_cell():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(2 * 8 * 10, dtype=torch.float32).reshape(2, 1, 8, 10)
    (a, b), (fa, fb) = baselines.neighbor_subsample([y, y * 2], g)
    assert a.shape == (2, 1, 4, 5)
    # pixel values encode their position: row * 10 + col (+ 80 for the second image)
    for va, vb in zip(a.reshape(-1).tolist(), b.reshape(-1).tolist()):
        ia, ib = int(va) % 80, int(vb) % 80
        ra, ca, rb, cb = ia // 10, ia % 10, ib // 10, ib % 10
        assert (ra // 2, ca // 2) == (rb // 2, cb // 2)      # same 2x2 cell
        assert abs(ra - rb) + abs(ca - cb) == 1              # 4-neighbours
    assert torch.equal(fa, 2 * a)
    assert torch.equal(fb, 2 * b)


def test_neighbor2neighbor_lambda_ramps_only_on_training_calls():
    net = torch.nn.Conv2d(1, 1, 3, padding=1)
    loss = baselines.Neighbor2NeighborLoss(total_steps=4)
    g = torch.Generator().manual_seed(0)
    y = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        loss(net, y, None, g)
    assert loss.step == 0
    result = loss(net, y, None, g)
    result.loss.backward()
    assert loss.step == 1
    assert net.weight.grad is not None
    assert set(result.terms) == {"reconstruction", "regulariser"}


def test_anscombe_inverse_recovers_the_mean():
    rng = np.random.default_rng(0)
    noise = NOISES["poisson-gaussian"]
    for mean in (2.0, 10.0, 20.0):
        y = rng.poisson(mean, 200_000) + noise.sigma * rng.standard_normal(200_000)
        d = baselines.anscombe(y, noise.sigma, noise.gain)
        assert np.std(d) == pytest.approx(1, abs=0.08)
        # the unbiased inverse of the exact expectation gives back the mean
        back = baselines.inverse_anscombe(np.full(1, d.mean()), noise.sigma, noise.gain)[0]
        assert back == pytest.approx(mean, rel=0.08)


def test_flops_per_pixel_of_one_convolution():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Conv2d(4, 2, 1))
    assert speed.flops_per_pixel(net, size=32) == pytest.approx(2 * 1 * 4 * 9 + 2 * 4 * 2)


# --------------------------------------------------------------------------------------------
# the suites at smoke size


@pytest.mark.slow
def test_quality_suite_smoke(tmp_path):
    out = tmp_path / "quality"
    code = quality.main(["--smoke", "--out", str(out), "--images", "camera",
                         "--noises", "gaussian", "poisson-gaussian", "correlated",
                         "--long-methods", "gr2r"])
    assert code == 0
    report = (out / "quality.md").read_text()
    assert "## PSNR (dB)" in report
    assert "Long run" in report
    data = json.loads((out / "quality.json").read_text())
    records = {(r["noise"], r["method"]): r for r in data["records"]}
    for noise in ("gaussian", "poisson-gaussian", "correlated"):
        noisy = records[(noise, "noisy")]
        if noise != "poisson-gaussian":
            assert noisy["psnr"] == pytest.approx(20.17, abs=0.3)
        # gr2r's PSNR against training time, for the time-to-quality table
        curve = records[(noise, "gr2r")]["curve"]
        assert [row[0] for row in curve] == [2, 4]
        assert 0 < curve[0][1] <= curve[1][1] <= records[(noise, "gr2r")]["seconds"]
        for method in quality.NETWORK_METHODS:
            assert math.isfinite(records[(noise, method)]["psnr"])
            assert -1 <= records[(noise, method)]["ssim"] <= 1
        for method, available in (("n2v", baselines.careamics_available()),
                                  ("bm3d", baselines.bm3d_available())):
            assert ("psnr" in records[(noise, method)]) == available
            if not available:
                assert "not installed" in records[(noise, method)]["skipped"]
    curve = data["long"]["curves"]["gr2r"]
    assert curve["steps"][-1] == 6
    assert len(curve["psnr"]) == len(curve["steps"])
    assert (out / "quality_montage.png").stat().st_size > 0
    assert (out / "quality_long_run.png").stat().st_size > 0
    # a second run reuses the stored results instead of training again
    stored = sorted(p.name for p in (out / "runs").iterdir())
    assert quality.main(["--smoke", "--out", str(out), "--images", "camera", "--noises",
                         "gaussian", "--skip-long"]) == 0
    assert sorted(p.name for p in (out / "runs").iterdir()) == stored


@pytest.mark.slow
def test_speed_suite_smoke(tmp_path):
    out = tmp_path / "speed"
    assert speed.main(["--smoke", "--in-process", "--no-careamics", "--out", str(out)]) == 0
    data = json.loads((out / "speed.json").read_text())
    assert data["peak"]["matmul_gflops"] > 0
    for row in data["train"] + data["infer"] + data["sizes"] + data["batches"]:
        assert "error" not in row, row
    assert all(r["patches_per_s"] > 0 for r in data["train"])
    assert all(r["mpx_per_s"] > 0 for r in data["infer"])
    assert "## Inference" in (out / "speed.md").read_text()


def test_files_benchmark_smoke(tmp_path):
    from benchmarks import files

    record = files.main(["--smoke", "--out", str(tmp_path)])
    assert set(record["runs"]) == {"in process, 2 threads", "in process, 1 thread"}
    assert all(r["files"] == 4 and r["files_per_min"] > 0 for r in record["runs"].values())
    assert record["max_difference_threads"] < 1e-3
    assert "files per minute" in (tmp_path / "files.md").read_text()


def test_zarr_chunks_benchmark_smoke(tmp_path):
    from benchmarks import zarr_chunks

    record = zarr_chunks.main(["--smoke", "--out", str(tmp_path)])
    assert record["chunks_in_store"] == {"tiny": 32 * 32, "rechunked": 1}
    assert record["chunk_reads"]["tiny"] <= 32 * 32  # each chunk read once
    assert record["ratio"] > 0
    assert "1x1 chunks" in (tmp_path / "zarr_chunks.md").read_text()


def test_realnoise_suite_smoke(tmp_path):
    """The real-noise benchmark on one vendored FMD capture, a few steps, per image and series."""
    out = tmp_path / "realnoise"
    code = realnoise.main(["--smoke", "--out", str(out), "--jobs", "1",
                           "--methods", "noisy", "gr2r", "n2c"])
    assert code == 0
    data = json.loads((out / "realnoise.json").read_text())
    scores = {(r["mode"], r["method"]): r["scores"]["3"]["psnr"] for r in data["records"]}
    assert scores[("image", "noisy")] == pytest.approx(32.10, abs=0.01)  # Confocal_BPAE_B_3
    assert set(scores) == {("image", "noisy"), ("image", "gr2r"), ("image", "n2c"),
                           ("series", "gr2r"), ("series", "n2c")}
    assert "mean PSNR per microscope" in (out / "realnoise.md").read_text()
    # the score at the capture's brightness is kept with the run (the repository keeps no images)
    stored = json.loads(next((out / "runs").glob("real-image-*-gr2r-smoke.json")).read_text())
    assert 0.8 < stored["scores"]["3"]["k"] < 1.2
    assert "psnr_k" in stored["scores"]["3"]
    assert "at the capture's brightness (diagnostic)" in (out / "realnoise.md").read_text()


def test_mc_inference_plain_pass_reproduces_the_engine():
    """The Monte-Carlo inference benchmark's single pass is the engine's own result, so its
    differences are the averaging's alone."""
    row = mc_inference.measure("Confocal_BPAE_G", 1, steps=3)
    assert row["plain"] == pytest.approx(row["engine"], abs=0.05)
    assert {"res_s1.0_k16", "gauss_s0.5_k1", "blend_res_s1.0"} <= set(row)
    assert "| `res_s1.0_k16` |" in mc_inference.summary([row])


def test_lever_comparison_pairs_captures_and_counts_a_repeated_image_once(tmp_path):
    def row(label, config, capture, value):
        return json.dumps(dict(label=label, config=config, capture=capture, train_s=1.0,
                               plain_psnr=value))

    log = tmp_path / "levers.jsonl"
    log.write_text("\n".join([
        row("base", "WideField_BPAE_B", 1, 30.0), row("base", "WideField_BPAE_B", 2, 30.0),
        row("base", "Confocal_BPAE_G", 1, 30.0),
        row("lever", "WideField_BPAE_B", 1, 29.0), row("lever", "WideField_BPAE_B", 2, 29.0),
        row("lever", "Confocal_BPAE_G", 1, 31.0)]))
    table = realnoise_levers.compare([log], "base")
    # captures 1 and 2 of WideField_BPAE_B are the same image: two captures, not three
    assert "| `lever` | 2 | +0.000 | 1 | -1.00 (WideField_BPAE_B_1) | +1.00 |" in table
    # only the configurations asked for
    table = realnoise_levers.compare([log], "base", ["Confocal_BPAE_G"])
    assert "| `lever` | 1 | +1.000 | 1 | +1.00 (Confocal_BPAE_G_1) | +1.00 |" in table


def test_ensemble_selection_tables_and_weight_average():
    rows = [dict(config="Confocal_BPAE_B", capture=c, best_step=100, kept_psnr=30.0,
                 per_member_psnr=30.0 + d, last_psnr=30.0 - d, swa4_psnr=30.0, swa7_psnr=30.0,
                 per_member_steps=[50, 100]) for c, d in ((1, 0.5), (2, 0.1))]
    table = ensemble_selection.tables(rows)
    assert "| `per_member` | 2 | +0.300 | 2 | +0.10 | +0.50 |" in table
    assert "| `last` | 2 | -0.300 | 0 | -0.50 | -0.10 |" in table
    assert "| Confocal_BPAE_B_1 | 30.00 (100) | 30.50 (+0.50) |" in table
    mean = ensemble_selection._average([{"w": torch.zeros(2)}, {"w": torch.full((2,), 4.0)}])
    assert mean["w"].tolist() == [2.0, 2.0]


def test_member_subsets_share_the_weights_and_rules_pick_without_the_truth(tmp_path, gaussian2d):
    from napari_gr2r import engine
    from tests.helpers import tiny

    model = engine.train(gaussian2d, axes="YX", config=tiny(members=3, steps=2))
    sub = realnoise_members.subset_model(model, (0, 2))
    assert sub.config.members == 2
    assert sub.net.members[1] is model.net.members[2]
    x = torch.from_numpy(gaussian2d[None, None] / 200)
    with torch.no_grad():
        want = (model.net.members[0](x) + model.net.members[2](x)) / 2
        assert torch.allclose(sub.net.eval()(x), want, atol=1e-6)

    def subset(members, loss, psnr_value):
        return dict(members=members, val_loss=loss, val_psnr=0.0, est_mse=loss, est_psnr=0.0,
                    psnr=psnr_value, psnr_k=psnr_value)
    row = dict(config="Confocal_BPAE_B", capture=1, subsets=[
        subset([0], 2.0, 30.0), subset([1], 1.0, 31.0), subset([0, 1], 1.5, 30.8)])
    log = tmp_path / "members.jsonl"
    log.write_text(json.dumps(row) + "\n")
    table = realnoise_members.rules(log, None, "prior")
    assert "| min val_loss | 31.000 / 31.000 | +0.200 / +0.200 | 1 / 1 |" in table
    assert "| all | 30.800 / 30.800 | +0.000 / +0.000 | 0 / 0 |" in table


def test_synthetic_lever_comparison_pairs_image_noise_and_level(tmp_path):
    from benchmarks import noise_scale

    def row(variant, image, level, value):
        return json.dumps(dict(image=image, noise="gaussian", level=level, variant=variant,
                               psnr=value))

    log = tmp_path / "synthetic.jsonl"
    log.write_text("\n".join([
        row("preset", "cell", 0.05, 30.0), row("preset", "cell", 0.1, 25.0),
        row("alpha=0.7", "cell", 0.05, 30.5), row("alpha=0.7", "cell", 0.1, 24.0),
        row("alpha=0.7", "coins", 0.1, 40.0)]))  # no baseline run: left out
    table = noise_scale.compare([log], "preset")
    assert "| `alpha=0.7` | 2 | -0.250 | -0.25 | 1 | -1.00 (cell, gaussian 0.1) | +0.50 |" in table


def test_pixel_shuffle_takes_an_odd_sized_image_apart_and_back_without_moving_a_pixel():
    image = np.arange(7 * 9, dtype=np.float32).reshape(7, 9) + 1
    parts = realnoise_levers.unshuffle(image, 2)
    assert [p.shape for p in parts] == [(3, 4)] * 4
    assert parts[1][0, 0] == image[0, 1]  # every second pixel, from the part's offset
    back = realnoise_levers.reshuffle(parts, 2, image.shape)
    assert np.array_equal(back[:6, :8], image[:6, :8])
    assert not back[6].any()  # the row and column left out stay empty
    assert not back[:, 8].any()


def test_the_variance_stabilising_lever_makes_the_noise_unit_and_inverts_its_mean():
    """Poisson-Gaussian noise of variance ``a x + b`` has unit variance after ``vst``, and the
    unbiased inverse of the transform's mean gives back the signal, which the algebraic one
    misses at a few counts."""
    rng = np.random.default_rng(0)
    a, b = 3.0, 20.0
    for x in (15.0, 150.0):  # 5 and 50 counts
        y = a * rng.poisson(x / a, 200_000) + rng.normal(0, np.sqrt(b), 200_000)
        z = realnoise_levers.vst(y.astype(np.float32), a, b)
        assert z.var() == pytest.approx(1.0, abs=0.06)
        mean = np.array([z.mean()], np.float32)
        assert realnoise_levers.inverse_vst(mean, a, b)[0] == pytest.approx(x, rel=0.03)
        algebraic = realnoise_levers.inverse_vst(mean, a, b, kind="algebraic")[0]
        assert abs(algebraic - x) > abs(realnoise_levers.inverse_vst(mean, a, b)[0] - x)


def test_realnoise_shows_a_stored_long_run_with_where_it_came_from(tmp_path):
    out = tmp_path / "realnoise"
    args = ["--smoke", "--out", str(out), "--jobs", "1", "--series-methods"]
    assert realnoise.main([*args, "--methods", "gr2r-balanced"]) == 0
    record = json.loads((out / "realnoise.json").read_text())["records"][0]
    assert [p["step"] for p in record["trace"]] == [2, 4]  # PSNR during the long run
    # the trace's own denoising is not counted in the method's time
    assert record["trace_s"] > 0
    assert record["seconds"] > 0
    assert record["trace"][1]["elapsed_s"] <= record["seconds"]
    assert realnoise.main([*args, "--methods", "noisy", "--stored-methods", "gr2r-balanced"]) == 0
    data = json.loads((out / "realnoise.json").read_text())
    assert {r["method"]: bool(r.get("stored")) for r in data["records"]} == {
        "noisy": False, "gr2r-balanced": True}
    text = (out / "realnoise.md").read_text()
    assert f"shown from the stored runs under `runs/`: gr2r balanced on Confocal_BPAE_B_3 " \
           f"(finished {record['finished']}" in text
    assert "gr2r balanced on Confocal_BPAE_B_3: the network being trained" in text


def test_context_benchmark_at_smoke_size():
    from benchmarks import context

    noisy, clean, data_range = context.moving_timelapse(frames=3, size=40)
    assert noisy.shape == clean.shape == (3, 40, 40)
    assert not np.allclose(clean[0], clean[1])  # the cells move
    records = [context.run_one(dict(dataset="moving", context=k, seed=0, steps=2, noisy=noisy,
                                    clean=clean, range=data_range, axes="TYX"))
               for k in (0, 1)]
    text = context.report(records, "python -m benchmarks.context --smoke",
                          dict(machine={}, versions={}, steps=2, seed=0, wall_s=1.0))
    assert "| moving | 1 |" in text
    thick, _, _ = context.z_stack(4)
    thin, _, _ = context.z_stack(1)
    assert thick.shape[0] < thin.shape[0]


def test_foi2008_fit_reads_poisson_gaussian_noise_on_a_smooth_image():
    """The benchmark's Foi et al. (2008) estimator: on a smooth ramp (no texture to leak in)
    it finds a signal-dependent noise's mean variance, and white noise's."""
    from benchmarks import noise_fit

    ramp = np.tile(np.linspace(100, 900, 192), (192, 1))
    rng = np.random.default_rng(0)
    noisy = ramp + rng.normal(0, 1, ramp.shape) * np.sqrt(0.5 * ramp + 100)
    truth = float(np.mean(0.5 * ramp + 100))
    assert noise_fit.est_foi2008(noisy, rng) == pytest.approx(truth, rel=0.06)
    white = ramp + rng.normal(0, 20, ramp.shape)
    assert noise_fit.est_foi2008(white, rng) == pytest.approx(400, rel=0.06)


def test_liu_level_on_every_other_pixel_reads_weakly_correlated_noise_at_its_variance():
    """The benchmark's polyphase estimator: on a smooth ramp, noise correlated between
    neighbours (as a scanning microscope's) is read at its variance by Liu's level on pixels two
    apart, and low by the same level on the whole image (its smallest eigenvalues)."""
    from benchmarks import noise_fit

    ramp = np.tile(np.linspace(100, 900, 194), (194, 1))
    white = np.random.default_rng(0).standard_normal((196, 196))
    noisy = ramp + 30 * noise_fit._correlate(white, noise_fit.WEAK)
    whole = noise_fit.est_liu2013(noisy, np.random.default_rng(0))
    poly = noise_fit.est_liu_poly(noisy, np.random.default_rng(0))
    assert poly == pytest.approx(900, rel=0.06)
    assert whole < 0.85 * 900


def test_local_brightness_is_put_back_and_the_noise_left_out():
    """``with_local_brightness``: an output darker than its input by a slow ramp gets the ramp
    back, while the zero-mean noise it removed stays removed."""
    y, x = np.mgrid[0:128, 0:128]
    clean = 100 + 50 * np.sin(x / 9.0) * np.cos(y / 13.0)
    noisy = clean + np.random.default_rng(0).normal(0, 10, clean.shape)
    out = clean - (5 + 0.05 * x)  # a denoiser that lost some brightness, unevenly
    back = realnoise_levers.with_local_brightness(out.astype(np.float32), noisy, 16)
    assert np.abs(back - clean).mean() < 0.25 * np.abs(out - clean).mean()
    assert np.std(back - clean) < 0.1 * 10


def test_supervised_lever_run_trains_n2c_on_the_ground_truth_at_the_capture_brightness():
    tiny_run = dict(start="scratch", width=8, patch_size=16, batch_size=2, steps=4, val_every=2,
                    event_every=1)
    row = realnoise_levers.run("Confocal_BPAE_G", 3, tiny_run, supervised="k")
    assert row["supervised"] == "k"
    assert row["overrides"]["method"] == "n2c"
    assert math.isfinite(row["plain_psnr_k"])
    assert 0.8 < row["k"] < 1.2
    with pytest.raises(SystemExit, match="supervised"):
        realnoise_levers.run("Confocal_BPAE_G", 3, tiny_run, vst_inverse="unbiased",
                             supervised="gt")


def test_shift_matched_truth_of_a_capture_inside_its_own_average():
    """``benchmarks.estimate.true_mse_shifted``: the identity (which keeps all of a capture's
    noise: error σ², divergence σ²) is scored at σ², though the capture is one of the 50
    averaged into its reference (without the cross term: 4 % low)."""
    from benchmarks.estimate import shifted_reference, true_mse_shifted

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:256, 0:256]
    clean = 100 + 50 * np.sin(xx / 9.0) * np.cos(yy / 13.0)
    captures = clean + rng.normal(0, 5, (50, 256, 256))
    raw, gt = captures[0], captures.mean(axis=0)
    case = shifted_reference(raw, gt)
    assert case["shift_scale"] == pytest.approx(1.0, abs=0.01)
    assert true_mse_shifted(raw, case, divergence=25.0) == pytest.approx(25.0, rel=0.015)


def test_hot_pixel_scene_holds_hot_pixels_the_test_finds_and_a_capture_holds_none():
    from benchmarks import hotpixels, noise_fit

    _, noisy, hot = hotpixels.camera_scene()
    assert noisy.dtype == np.uint16
    assert hot.sum() == 60
    assert hotpixels.found(noisy) == 60
    capture = noise_fit._png(noise_fit.FMD / "raw" / "WideField_BPAE_R_1.png")
    assert hotpixels.found(capture) == 0


def test_dynamic_range_scenes_and_table():
    from benchmarks import dynamic_range as dr

    for kind in dr.SCENES:
        clean, noisy = dr.scene(kind, 3000, 0)
        assert clean.min() == pytest.approx(dr.OFFSET + dr.BACKGROUND)
        assert clean.max() == pytest.approx(dr.OFFSET + dr.BACKGROUND + 3000)
        dark = clean < dr.OFFSET + dr.BACKGROUND + 1
        assert np.std(noisy[dark] - clean[dark]) == pytest.approx(
            np.sqrt(dr.BACKGROUND + dr.READ**2), rel=0.1)
    row = {"scene": "spots", "peak": 300.0, "seed": 0, "psnr_noisy": 40.0, "psnr": 50.0,
           "dark_rms_over_noise": 0.1, "near_rms_over_noise": 0.2, "lowest_below_offset": 1.0}
    table = dr.table([{**row, "method": "fast+vst"},
                      {**row, "method": "fast", "worse_than_input": False}])
    assert "| spots | 300 | 40.00 | 50.00 | 50.00 | 0.10, 0.10 | 0.20, 0.20 | 1.0, 1.0 | no |" \
        in table
