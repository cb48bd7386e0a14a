"""Outputs never overwrite inputs, and one run at a time claims an output store."""

from __future__ import annotations

import numpy as np
import pytest

from napari_gr2r.engine.errors import OutputError
from napari_gr2r.engine.io.outputs import OutputClaim, check_not_input, lock_path, store_location


@pytest.mark.parametrize(("out", "message"), [("in.zarr", "is the input"),
                                              ("in.zarr/sub", "inside the input"),
                                              (".", "contains the input")])
def test_an_output_that_overlaps_the_input_is_refused(tmp_path, out, message):
    inp = tmp_path / "in.zarr"
    with pytest.raises(OutputError, match=message):
        check_not_input(tmp_path / out, [inp])


def test_other_outputs_pass(tmp_path):
    check_not_input(tmp_path / "out.zarr", [tmp_path / "in.zarr", None])
    check_not_input("s3://bucket/out.zarr", ["s3://bucket/in.zarr"])
    with pytest.raises(OutputError, match="inside"):
        check_not_input("s3://bucket/in.zarr/x", ["s3://bucket/in.zarr/"])


def test_store_location_of_zarr_and_memmap(tmp_path):
    import zarr

    arr = zarr.open_array(str(tmp_path / "a.zarr"), mode="w", shape=(4,), dtype="f4")
    assert store_location(arr) == str((tmp_path / "a.zarr").resolve())
    mm = np.memmap(tmp_path / "m.dat", dtype="f4", mode="w+", shape=(4,))
    assert store_location(mm) == str((tmp_path / "m.dat").resolve())
    assert store_location(np.zeros(3)) is None


def test_one_claim_at_a_time(tmp_path):
    location = str(tmp_path / "out.zarr")
    with OutputClaim(location) as first:
        assert lock_path(location).exists()
        with pytest.raises(OutputError):
            OutputClaim(location).acquire()
        assert first.token
    assert not lock_path(location).exists()
    OutputClaim(location).acquire().release()  # free again


def test_a_stale_claim_of_a_dead_process_is_taken_over(tmp_path):
    import json

    location = str(tmp_path / "out.zarr")
    lock = lock_path(location)
    claim = OutputClaim(location)
    lock.write_text(json.dumps({**claim.record, "token": "old", "pid": 2**22 + 12345}))
    with claim:
        assert json.loads(lock.read_text())["token"] == claim.token


def test_urls_have_no_lock():
    assert lock_path("s3://bucket/out.zarr") is None
    with OutputClaim("s3://bucket/out.zarr"):
        pass
