"""A battery of bad input through the engine and the command line, and a property-based fuzz.

Every bad input gets the project's own error type (``napari_gr2r.engine.errors``) with a
message that says what to do, and its bytes are the same afterwards; odd but valid input
(float16, big-endian, read-only, non-contiguous, memory-mapped, tensors, ...) gives the same
result as a plain float32 array. On the command line each bad input ends in one line on
stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import zarr
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from napari_gr2r import engine
from napari_gr2r.cli import main
from napari_gr2r.engine import GR2RError
from tests.helpers import tiny, tiny_model

SHAPE = (40, 36)


def noisy(shape=SHAPE, dtype=np.float32, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(100, 1100, shape).astype(dtype)


def digest(data) -> str:
    """Bytes, shape, dtype and strides of an array (or the bytes of its file)."""
    if isinstance(data, torch.Tensor):
        if data.device.type != "cpu":
            return repr((data.shape, data.dtype, data.device))
        data = data.detach().numpy()
    if isinstance(data, np.memmap) and data.filename:
        return hashlib.sha256(Path(data.filename).read_bytes()).hexdigest()
    if isinstance(data, zarr.Array):
        data = data[...]
    if isinstance(data, np.ndarray):
        flags = (data.flags.writeable, data.flags.c_contiguous)
        if data.dtype.kind == "O":
            return repr((data.tolist(), data.shape, flags))
        return hashlib.sha256(np.ascontiguousarray(data).tobytes() + repr(
            (data.shape, data.dtype.str, data.strides, flags)).encode()).hexdigest()
    return repr(data)


def with_value(value, dtype=np.float32, at=(3, 4)):
    def make():
        a = noisy(dtype=dtype)
        a[at] = value
        return a
    return make


# --------------------------------------------------------------------------------------------
# the engine: bad arrays, axes and arguments

# (kind of input, how to make it, axes, what to run, words the message must contain: what is
# wrong and what to do)
ENGINE_CASES = [
    ("bool", lambda: noisy() > 500, "YX", "denoise", "integer or float image"),
    ("complex", lambda: noisy().astype(np.complex64), "YX", "denoise", "np.abs"),
    ("object", lambda: noisy().astype(object), "YX", "denoise", "integer or float image"),
    ("strings", lambda: np.full(SHAPE, "a"), "YX", "denoise", "integer or float image"),
    ("datetime", lambda: np.zeros(SHAPE, "datetime64[s]"), "YX", "denoise", "integer or float"),
    ("NaN", with_value(np.nan), "YX", "denoise", "np.nan_to_num"),
    ("+Inf", with_value(np.inf), "YX", "train", "np.nan_to_num"),
    ("-Inf float16", with_value(-np.inf, np.float16), "YX", "denoise", "np.nan_to_num"),
    ("NaN big-endian", lambda: with_value(np.nan)().astype(">f4"), "YX", "denoise", "nan_to_num"),
    ("beyond float32", with_value(1e39, np.float64), "YX", "denoise", "divide"),
    ("beyond float32, train", with_value(-1e39, np.float64), "YX", "train", "divide"),
    ("empty axis", lambda: np.zeros((0, 36), np.float32), "YX", "denoise", "nothing to denoise"),
    ("empty sample axis", lambda: np.zeros((0, 40, 36), np.float32), "TYX", "denoise", "empty"),
    ("1-pixel Y", lambda: noisy((1, 36)), "YX", "denoise", "Check the axes"),
    ("1-pixel X", lambda: noisy((40, 1)), "YX", "train", "Check the axes"),
    ("too small to train", lambda: noisy((8, 8)), "YX", "train", "Use a larger image"),
    ("0-d", lambda: np.float32(3.0), "YX", "denoise", "one letter per dimension"),
    ("1-d", lambda: noisy((40,)), "YX", "denoise", "one letter per dimension"),
    ("too few axes", noisy, "ZYX", "denoise", "one letter per dimension"),
    ("too many axes", lambda: noisy((2, 40, 36)), "YX", "denoise", "one letter per dimension"),
    ("duplicate axes", noisy, "YY", "denoise", "more than once"),
    ("lower-case duplicate", noisy, "yy", "denoise", "more than once"),
    ("unknown letter", noisy, "QX", "denoise", "Use T or S"),
    ("no Y", lambda: noisy((2, 36)), "CX", "denoise", "must contain both Y and X"),
    ("axes not a string", noisy, 12, "train", "such as 'YX'"),
    ("empty axes", noisy, "", "train", "such as 'YX'"),
    ("too many channels", lambda: noisy((20, 40, 36)), "CYX", "train", "label it Z or T"),
    ("channels vs model", lambda: noisy((3, 40, 36)), "CYX", "denoise", "same channels"),
    ("3D model, no Z", noisy, "YX", "denoise3d", "Use a 2D model"),
    ("axes unknown for model", lambda: noisy((3, 40, 36)), None, "denoise", "pass axes="),
    ("constant", lambda: np.full(SHAPE, 7, np.uint16), "YX", "train", "no signal"),
    ("uint64 near 2**64", lambda: (np.uint64(2**64 - 4096) + noisy(dtype=np.uint64)), "YX",
     "train", "image - image.min()"),
    ("a dict", lambda: {"data": noisy()}, "YX", "denoise", "numpy, dask or zarr"),
    ("a string", lambda: "image.tif", "YX", "denoise", "numpy, dask or zarr"),
    ("tensor on another device", lambda: torch.empty(SHAPE, device="meta"), "YX", "denoise",
     ".cpu()"),
    ("ragged list", lambda: [[1.0, 2.0], [3.0]], "YX", "denoise", "numpy, dask or zarr"),
    ("dask, unknown chunk sizes", lambda: _unknown_sizes(), "X", "denoise",
     "compute_chunk_sizes()"),
    ("3D net, 3 slices", lambda: noisy((3, 40, 36)), "ZYX", "train3d", "net_dims='2d'"),
    ("n2c without target", noisy, "YX", "n2c", "target="),
    ("n2c target shape", noisy, "YX", "n2c-shape", "must match"),
]


def _unknown_sizes():
    import dask.array as da

    lazy = da.from_array(noisy(), chunks=(20, 18))
    return lazy[lazy > 0]  # boolean indexing: the sizes are known only once computed


def _run(kind: str, data, axes):
    if kind == "denoise":
        return engine.denoise(tiny_model(), data, axes)
    if kind == "denoise3d":
        return engine.denoise(tiny_model(dims=3, axes="ZYX"), data, axes)
    if kind == "train":
        return engine.train(data, axes, tiny(steps=2))
    if kind == "train3d":
        return engine.train(data, axes, tiny(steps=2, net_dims="3d"))
    if kind == "n2c":
        return engine.train(data, axes, tiny(steps=2, method="n2c"))
    if kind == "n2c-shape":
        return engine.train(data, axes, tiny(steps=2, method="n2c"), target=noisy((40, 30)))
    raise AssertionError(kind)


@pytest.mark.parametrize(("name", "make", "axes", "kind", "words"), ENGINE_CASES,
                         ids=[c[0] for c in ENGINE_CASES])
def test_bad_input_gets_a_clear_error_and_is_not_modified(name, make, axes, kind, words):
    data = make()
    before = digest(data)
    with pytest.raises(GR2RError) as err:
        _run(kind, data, axes)
    message = str(err.value)
    assert words in message, message
    assert "\n" not in message
    assert len(message) < 400
    assert digest(data) == before


# (kind of odd but valid input, how to make it from the float32 image, axes)
ODD_BUT_VALID = [
    ("float16", lambda a: a.astype(np.float16), "YX"),
    ("big-endian float32", lambda a: a.astype(">f4"), "YX"),
    ("big-endian uint16", lambda a: a.astype(">u2"), "YX"),
    ("float64", lambda a: a.astype(np.float64), "YX"),
    ("int64", lambda a: a.astype(np.int64), "YX"),
    ("read-only", lambda a: _read_only(a), "YX"),
    ("non-contiguous", lambda a: np.repeat(a, 2, axis=1)[:, ::2], "YX"),
    ("Fortran order", lambda a: np.asfortranarray(a), "YX"),
    ("transposed axes", lambda a: a.T.copy(), "XY"),
    ("lower-case axes", lambda a: a, "yx"),
    ("axes with spaces", lambda a: a, " YX "),
    ("singleton T", lambda a: a[None], "TYX"),
    ("singleton C last", lambda a: a[..., None], "YXC"),
    ("nested list", lambda a: a.tolist(), "YX"),
    ("torch tensor", lambda a: torch.from_numpy(a), "YX"),
    ("zarr read-only", lambda a: _zarr_read_only(a), "YX"),
]


def _read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def _zarr_read_only(a):
    store = zarr.storage.MemoryStore()
    zarr.create_array(store, data=a, chunks=(16, 16))
    return zarr.open_array(store, mode="r")


@pytest.mark.parametrize(("name", "make", "axes"), ODD_BUT_VALID,
                         ids=[c[0] for c in ODD_BUT_VALID])
def test_odd_but_valid_input_gives_the_plain_result(name, make, axes):
    plain = np.round(noisy())  # integers, so the integer dtypes hold the same values
    expected = engine.denoise(tiny_model(), plain, "YX")
    data = make(plain)
    before = digest(data)
    out = engine.denoise(tiny_model(), data, axes)
    assert out.dtype == np.float32
    if axes.strip().upper() == "XY":
        out = out.T
    np.testing.assert_allclose(out.reshape(expected.shape), expected,
                               rtol=2e-3 if name == "float16" else 1e-6, atol=1e-3)
    assert digest(data) == before


def test_memory_mapped_input_is_not_modified(tmp_path):
    path = tmp_path / "in.tif"
    tifffile.imwrite(path, np.round(noisy()))
    data = tifffile.memmap(path, mode="r")
    before = path.read_bytes()
    engine.denoise(tiny_model(), data, "YX")
    engine.train(data, "YX", tiny(steps=2))
    assert path.read_bytes() == before


# --------------------------------------------------------------------------------------------
# the engine: model files


def _model_payload():
    from napari_gr2r.engine.model.checkpoint import model_to_dict

    return model_to_dict(tiny_model())


def _torch_file(change):
    def write(path: Path) -> None:
        payload = _model_payload()
        change(payload)
        torch.save(payload, path)
    return write


def _bytes(data: bytes):
    return lambda path: path.write_bytes(data)


def _truncated(path: Path) -> None:
    engine.save_model(tiny_model(), path)
    path.write_bytes(path.read_bytes()[:5000])


def _nan_weights(payload):
    next(iter(payload["state_dict"].values())).fill_(float("nan"))


MODEL_FILES = [
    ("text file", _bytes(b"hello, this is text"), "is not a napari-gr2r model file"),
    ("0-byte file", _bytes(b""), "is not a napari-gr2r model file"),
    ("a TIFF", lambda p: tifffile.imwrite(p, noisy()), "is not a napari-gr2r model file"),
    ("truncated", _truncated, "is not a napari-gr2r model file"),
    ("pickled object", lambda p: torch.save({"when": np.datetime64("2020")}, p),
     "is not a napari-gr2r model file"),
    ("foreign state dict", lambda p: torch.save({"w": torch.zeros(2)}, p),
     "is not a napari-gr2r model file"),
    ("a list", lambda p: torch.save([1, 2, 3], p), "is not a napari-gr2r model file"),
    ("version not a number", _torch_file(lambda d: d.update(format_version="abc")), "version"),
    ("version None", _torch_file(lambda d: d.update(format_version=None)), "version"),
    ("version inf", _torch_file(lambda d: d.update(format_version=float("inf"))), "version"),
    ("version NaN", _torch_file(lambda d: d.update(format_version=float("nan"))), "version"),
    ("newer version", _torch_file(lambda d: d.update(format_version=99)), "upgrade napari-gr2r"),
    ("missing weights", _torch_file(lambda d: d.pop("state_dict")), "incomplete"),
    ("wrong weight shapes", _torch_file(lambda d: d.update(channels=3)), "incomplete"),
    ("bad config", _torch_file(lambda d: d["config"].update(width=-1)), "width"),
    ("config not a dict", _torch_file(lambda d: d.update(config="fast")), "incomplete"),
    ("axes not letters", _torch_file(lambda d: d.update(axes=5)), "do not fit together"),
    ("no channels", _torch_file(lambda d: d.update(channels=0)), "do not fit together"),
    ("a 4D network", _torch_file(lambda d: d.update(dims=4)), "do not fit together"),
    ("NaN weights", _torch_file(_nan_weights), "NaN or infinite weights"),
    ("degenerate normalisation", _torch_file(
        lambda d: d["normalization"].update(high=d["normalization"]["low"])), "normalisation"),
    ("normalisation of strings", _torch_file(
        lambda d: d["normalization"].update(low=["a"])), "normalisation"),
    ("directory", lambda p: p.mkdir(), "is a directory"),
    ("missing", lambda p: None, "No model file"),
]


@pytest.mark.parametrize(("name", "write", "words"), MODEL_FILES, ids=[c[0] for c in MODEL_FILES])
def test_bad_model_files_get_a_clear_error(tmp_path, name, write, words):
    path = tmp_path / "model.gr2r.pt"
    write(path)
    before = path.read_bytes() if path.is_file() else None
    with pytest.raises(engine.CheckpointError) as err:
        engine.load_model(path)
    message = str(err.value)
    assert words in message, message
    assert "weights_only" not in message
    assert "\n" not in message
    assert (path.read_bytes() if path.is_file() else None) == before


# --------------------------------------------------------------------------------------------
# a property-based fuzz of engine.denoise

DTYPES = ["float64", "float32", "float16", ">f4", "uint8", "uint16", ">u2", "int8", "int32",
          "uint64", "bool", "complex64"]


VALID_AXES = {1: ["X"], 2: ["YX", "XY", "yx"], 3: ["ZYX", "TYX", "YXC", "YZX", "SYX"],
              4: ["TZYX", "TZXY", "CZYX"]}


@st.composite
def arrays_and_axes(draw):
    ndim = draw(st.sampled_from([2, 3, 2, 4, 3, 1]))
    side = st.sampled_from([2, 17, 40, 5, 33, 1, 0, 3])
    shape = tuple(draw(st.lists(side, min_size=ndim, max_size=ndim)))
    if draw(st.integers(0, 4)):  # mostly axes that fit the shape, sometimes anything
        axes = draw(st.sampled_from(VALID_AXES[ndim]))
    else:
        axes = "".join(draw(st.lists(st.sampled_from("TSCZYXQyx"), min_size=1, max_size=5)))
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    seed = draw(st.integers(0, 2**16))
    data = np.random.default_rng(seed).uniform(0, 200, shape)
    special = draw(st.sampled_from([None, np.nan, np.inf, -np.inf, 1e39, -1e39]))
    if special is not None and data.size:
        data.flat[draw(st.integers(0, data.size - 1))] = special
    with np.errstate(all="ignore"):
        data = data.astype(dtype) if dtype.kind != "b" else data > 100
    return data, axes


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None,
          derandomize=True)
@given(arrays_and_axes())
@example((with_value(1e39, np.float64)(), "YX"))
@example((noisy((3, 40, 36), np.float64) * 1e36, "ZYX"))
def test_fuzz_denoise_either_works_or_explains(case):
    data, axes = case
    before = digest(data)
    c = data.shape[axes.index("C")] if "C" in axes and len(axes) == data.ndim else 1
    try:
        out = engine.denoise(tiny_model(channels=min(max(c, 1), 16)), data, axes)
    except GR2RError as exc:
        message = str(exc)
    else:
        message = None
    if message is not None:
        assert message
        assert "\n" not in message
    else:
        assert out.shape == data.shape
        assert out.dtype == np.float32
        assert np.isfinite(out).all()
    assert digest(data) == before


# --------------------------------------------------------------------------------------------
# the command line


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    tifffile.imwrite(folder / "in.tif", noisy())
    engine.save_model(tiny_model(), folder / "m.gr2r.pt")
    (folder / "text.pt").write_text("not a model")
    payload = _model_payload()
    payload["format_version"] = "one"
    torch.save(payload, folder / "version.gr2r.pt")
    payload = _model_payload()
    _nan_weights(payload)
    torch.save(payload, folder / "nan.gr2r.pt")
    torch.save({"when": np.datetime64("2020")}, folder / "foreign.pt")
    zarr.save_array(str(folder / "in.zarr"), noisy())
    tifffile.imwrite(folder / "nan.tif", with_value(np.nan)())
    tifffile.imwrite(folder / "small.tif", noisy((8, 8)))
    tifffile.imwrite(folder / "rgb.tif", noisy((40, 36, 3)).astype(np.uint8),
                     photometric="rgb")
    return folder


def _den(*extra, model="m.gr2r.pt", src="in.tif", out="o.tif"):
    return ["denoise", src, "--model", model, "-o", out, *extra]


def _train(*extra, src="in.tif"):
    return ["train", src, "--axes", "YX", "--preset", "fast", "--steps", "2", "-o", "t.gr2r.pt",
            *extra]


CLI_CASES = [
    ("--device cuda without a GPU", _den("--device", "cuda"), "no CUDA GPU"),
    ("--device tpu", _den("--device", "tpu"), "--device"),
    ("--device cuda:7", _train("--device", "cuda:7"), "cuda"),
    ("train --device tpu", _train("--device", "tpu"), "--device"),
    ("text file as --model", _den(model="text.pt"), "text.pt is not a napari-gr2r model file"),
    ("foreign pickle as --model", _den(model="foreign.pt"), "is not a napari-gr2r model file"),
    ("image as --model", _den(model="in.tif"), "in.tif is not a napari-gr2r model file"),
    ("model version not a number", _den(model="version.gr2r.pt"), "version"),
    ("model with NaN weights", _den(model="nan.gr2r.pt"), "NaN or infinite weights"),
    ("folder as --model", _den(model="."), "is a directory"),
    ("missing --model", _den(model="nope.gr2r.pt"), "No model file"),
    ("--tile 0", _den("--tile", "0"), "tile"),
    ("--tile -3", _den("--tile", "-3"), "tile"),
    ("--steps 0", _train("--steps", "0"), "steps"),
    ("--seed -1", _train("--seed", "-1"), "seed"),
    ("r2r --noise-sigma nan", _train("--method", "r2r", "--noise-sigma", "nan"), "noise_sigma"),
    ("--axes QQ", _den("--axes", "QQ"), "Unknown axis"),
    ("--axes YXX", _den("--axes", "YXX"), "more than once"),
    ("NaN image", _den(src="nan.tif"), "NaN"),
    ("too small to train", _train(src="small.tif"), "at least 16x16"),
    ("model vs RGB image", _den("--axes", "YXC", src="rgb.tif"), "channel"),
    ("zarr output is the input", _den(src="in.zarr", out="in.zarr"), "input"),
    ("zarr output inside the input", _den(src="in.zarr", out="in.zarr/0"), "input"),
    ("zarr output inside the input, --overwrite",
     _den("--overwrite", src="in.zarr", out="in.zarr/sub.zarr"), "input"),
    ("TIFF output inside the input zarr", _den(src="in.zarr", out="in.zarr/out.tif"), "input"),
    ("missing input", _den(src="missing.tif"), "No image at"),
]


def _folder_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(("name", "args", "words"), CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input_ends_in_one_line_and_exit_2(files, monkeypatch, capsys, name, args,
                                                   words):
    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    monkeypatch.chdir(files)
    before = _folder_digest(files)
    assert main(list(args)) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # no progress bars, no traceback
    assert lines[0].startswith("napari-gr2r: error: "), err
    assert words in lines[0], err
    assert "weights_only" not in err
    assert _folder_digest(files) == before
