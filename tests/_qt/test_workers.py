"""The worker generators, run synchronously (as napari's thread_worker would, minus the thread)."""

from __future__ import annotations

import numpy as np

from napari_gr2r import engine

TINY = engine.TrainConfig.from_preset("fast", steps=500, width=4, depth=1, patch_size=16,
                                      batch_size=2, event_every=5)


def test_stop_before_training_starts_is_not_lost():
    from napari_gr2r._qt._workers import TrainingJob

    job = TrainingJob()
    job.request_stop()
    image = np.random.default_rng(0).random((48, 48), np.float32)
    gen = job.run(image, "YX", TINY, None, "cpu")
    events = []
    try:
        while True:
            events.append(next(gen))
    except StopIteration as stop:
        model, out = stop.value
    finished = events[-1]
    assert isinstance(finished, engine.TrainingFinished)
    assert finished.stopped
    assert finished.step <= 1
    assert out is None
    assert model.step == finished.step


def test_preview_is_denoised_between_steps():
    from napari_gr2r._qt._preview import SliceRequest
    from napari_gr2r._qt._workers import PreviewResult, TrainingJob

    job = TrainingJob()
    image = np.random.default_rng(1).random((2, 48, 40), np.float32)
    cfg = TINY.replace(steps=10)
    request = SliceRequest(data=image[1].copy(), axes="YX", channel=None, z_index=None,
                           layer_kwargs={"name": "p"})
    gen = job.run(image, "ZYX", cfg, None, "cpu", denoise_after=True)
    events = [next(gen)]  # TrainingStarted
    job.request_preview(request, step=0)
    try:
        while True:
            events.append(next(gen))
    except StopIteration as stop:
        _, out = stop.value
    previews = [e for e in events if isinstance(e, PreviewResult)]
    assert len(previews) == 1
    assert previews[0].data.shape == (48, 40)
    assert "denoising" in events
    assert out.shape == image.shape


def test_preview_with_a_3d_network_denoises_a_slab():
    from napari_gr2r._qt._preview import SliceRequest
    from napari_gr2r._qt._workers import PreviewResult, TrainingJob

    job = TrainingJob()
    stack = np.random.default_rng(2).random((12, 40, 40), np.float32)
    cfg = TINY.replace(steps=5, net_dims="3d", patch_size_z=4, val_fraction=0.0)
    request = SliceRequest(data=stack[2:10].copy(), axes="ZYX", channel=None, z_index=3,
                           layer_kwargs={"name": "p"})
    gen = job.run(stack, "ZYX", cfg, None, "cpu")
    started = next(gen)
    assert started.net_dims == 3
    job.request_preview(request, step=0)
    preview = next(gen)
    assert isinstance(preview, PreviewResult)
    assert preview.data.shape == (40, 40)
    for _ in gen:
        pass


def test_workers_cap_torch_threads_and_restore_them():
    import threading

    import torch

    from napari_gr2r._qt._workers import TrainingJob
    from napari_gr2r.engine.devices import worker_threads

    seen, after = [], []

    def train_in_a_thread():
        torch.set_num_threads(2)
        gen = TrainingJob().run(np.random.default_rng(3).random((48, 48), np.float32), "YX",
                                TINY.replace(steps=2), None, "cpu")
        for _ in gen:
            seen.append(torch.get_num_threads())
        after.append(torch.get_num_threads())

    main_threads = torch.get_num_threads()
    thread = threading.Thread(target=train_in_a_thread)
    thread.start()
    thread.join()
    assert seen
    assert set(seen) == {min(2, worker_threads())}  # one core is left to the GUI
    assert after == [2]  # napari reuses worker threads: their count is restored
    assert torch.get_num_threads() == main_threads


def test_denoise_array_returns_its_range_warning_with_the_result():
    """The widget and the menu do not depend on the warning reaching the worker's ``warned``
    signal, which a process-wide warnings context of another worker can take away: the check
    comes back with the result, once, and is not warned."""
    import warnings

    from tests.helpers import tiny_model

    from napari_gr2r._qt._workers import denoise_array

    model = tiny_model()  # trained on values 100..1100
    far = np.random.default_rng(0).integers(-128, 128, (48, 48), dtype=np.int8)
    with warnings.catch_warnings(record=True) as issued:
        warnings.simplefilter("always")
        result = denoise_array(model, far, "YX", "cpu")
    assert not issued
    assert result.image.shape == far.shape
    assert "outside the range the model was trained on (100 to 1100)" in result.range_warning
    inside = denoise_array(model, np.full((48, 48), 600, np.uint16), "YX", "cpu")
    assert inside.range_warning is None
