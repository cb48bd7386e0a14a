"""The npe2 manifest: valid, importable, and shipped in the wheel with the sample images.

No display needed (see ``NO_DISPLAY_MODULES`` in conftest.py).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "src" / "napari_gr2r" / "napari.yaml"

npe2 = pytest.importorskip("npe2", reason="npe2 is not installed (pip install 'napari-gr2r[testing]')")


def test_npe2_validate_passes():
    result = subprocess.run([sys.executable, "-m", "npe2", "validate", str(MANIFEST)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout


def test_manifest_contributions():
    mf = npe2.PluginManifest.from_file(MANIFEST)
    assert mf.name == "napari-gr2r"
    assert [w.display_name for w in mf.contributions.widgets] == ["GR2R Denoise"]
    assert {s.key for s in mf.contributions.sample_data} == {"nuclei2d", "nuclei3d", "fmd_confocal"}
    assert [(w.display_name, w.layer_types) for w in mf.contributions.writers] == [
        ("TIFF with pixel size", ["image"])]
    from napari_gr2r._reader import SUFFIXES
    from napari_gr2r.engine.io.formats import TIFF_SUFFIXES, ZARR_SUFFIXES

    (reader,) = mf.contributions.readers
    assert set(reader.filename_patterns) == {f"*{s}" for s in SUFFIXES}
    assert set(SUFFIXES) == set(TIFF_SUFFIXES + ZARR_SUFFIXES)
    assert reader.accepts_directories  # a zarr store is a folder
    filter_menu = mf.contributions.menus["napari/layers/filter"]
    assert [item.submenu for item in filter_menu] == ["napari-gr2r.denoise"]
    titles = {c.id: c.title for c in mf.contributions.commands}
    entries = [titles[item.command] for item in mf.contributions.menus["napari-gr2r.denoise"]]
    assert entries == ["Train GR2R and denoise", "Denoise with saved model…"]
    assert [s.label for s in mf.contributions.submenus] == ["Denoise"]
    for command in mf.contributions.commands:  # every python_name resolves to a callable
        module, _, name = command.python_name.partition(":")
        assert callable(getattr(__import__(module, fromlist=[name]), name)), command.python_name


_CHECK_INSTALLED = textwrap.dedent("""
    import sys
    from pathlib import Path
    target = Path(sys.argv[1])
    import napari_gr2r
    assert Path(napari_gr2r.__file__).parent == target / "napari_gr2r", napari_gr2r.__file__
    from importlib.metadata import distribution
    from npe2 import PluginManifest
    dist = distribution("napari-gr2r")
    assert dist.metadata["License-Expression"] == "BSD-3-Clause", dist.metadata["License-Expression"]
    licence = [f for f in dist.files if f.name == "LICENSE" and "licenses" in f.parts]
    assert licence and "BSD 3-Clause" in licence[0].read_text(), dist.files
    urls = {u.split(",")[0] for u in dist.metadata.get_all("Project-URL")}
    assert urls == {"Bug Tracker", "Documentation", "Source Code", "User Support"}, urls
    mf = PluginManifest.from_distribution("napari-gr2r")
    assert mf.name == "napari-gr2r", mf.name
    assert {s.key for s in mf.contributions.sample_data} == {"nuclei2d", "nuclei3d", "fmd_confocal"}
    assert [(w.display_name, w.layer_types) for w in mf.contributions.writers] == [
        ("TIFF with pixel size", ["image"])]
    from napari_gr2r.sample_data import load_sample
    noisy, clean, info = load_sample("nuclei3d")
    assert noisy.shape == clean.shape and info["axes"] == "ZYX"
    noisy, clean, info = load_sample("fmd_confocal")
    assert noisy.dtype.name == "uint8" and noisy.shape == clean.shape == (256, 256)
    assert (target / "napari_gr2r" / "sample_data" / "LICENSE-FMD.md").is_file()
    from napari_gr2r._sample_data import nuclei2d
    (clean, meta, kind), (noisy, _, _) = nuclei2d()
    assert kind == "image" and noisy.shape == (256, 256) and meta["scale"] == (0.2, 0.2)
    print("installed wheel ok:", dist.locate_file(""), len(mf.contributions.commands), "commands")
""")


def test_installed_wheel_provides_manifest_and_samples(tmp_path):
    """Build the wheel, install it alone in a folder, and use it from there (a few seconds)."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "pyproject.toml", project)
    for name in ("README.md", "LICENSE"):
        shutil.copy(ROOT / name, project)
    shutil.copytree(ROOT / "src", project / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    wheels, target = tmp_path / "wheels", tmp_path / "target"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheels), str(project)], check=True, cwd=tmp_path)
    (wheel,) = wheels.glob("napari_gr2r-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True, cwd=tmp_path)
    # Only the installed copy and the dependencies' site-packages: no source tree, no .pth
    # files (which would add an editable install's source folder).
    import site

    paths = [str(target)] + [p for p in sys.path if p.endswith(("lib-dynload", ".zip"))
                             or Path(p).name.startswith("python3")]
    paths += site.getsitepackages()
    boot = f"import sys; sys.path[:] = {paths!r}; sys.argv[1:] = [{str(target)!r}]\n"
    result = subprocess.run([sys.executable, "-S", "-c", boot + _CHECK_INSTALLED],
                            capture_output=True, text=True, check=False, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "installed wheel ok" in result.stdout
