"""The README and the documentation site: links that resolve, and a site that builds cleanly."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
# What a biologist's first screen must lead to (issue: the README starts with what, install, how).
REQUIRED_PAGES = ("plugin", "python", "cli", "estimate", "robustness", "large-images", "export",
                  "method", "benchmarks", "development", "architecture")


def _relative_links(text: str) -> list[str]:
    links = [m.group(1).partition("#")[0] for m in LINK.finditer(text)]
    return [t for t in links if t and not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", t)]


def test_readme_links_resolve_and_lead_to_the_docs():
    text = README.read_text(encoding="utf-8")
    links = _relative_links(text)
    missing = [t for t in links if not (ROOT / t).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"
    linked_pages = {Path(t).stem for t in links if t.startswith("docs/") and t.endswith(".md")}
    assert set(REQUIRED_PAGES) <= linked_pages, sorted(set(REQUIRED_PAGES) - linked_pages)
    # CI runs the README's test command, and the first screen keeps the two fresh-machine commands.
    assert 'xvfb-run -a -s "-screen 0 1280x1024x24" python -m pytest' in text
    head = "\n".join(text.splitlines()[:40])
    assert "napari-gr2r demo" in head
    assert "bash .ci/run" in head
    # GR2R here is the generative one, not DeepInverse's generalized one of the same acronym.
    assert "Generative" in head
    assert "Generalized" in head


def test_docs_pages_links_resolve():
    """Relative links in docs/*.md point at files that exist (also for pages outside the nav)."""
    missing = []
    for page in sorted((ROOT / "docs").rglob("*.md")):
        for target in _relative_links(page.read_text(encoding="utf-8")):
            if not (page.parent / target).exists():
                missing.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not missing, missing


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None
                    or importlib.util.find_spec("mkdocstrings") is None,
                    reason='needs the docs extra: pip install -e ".[docs]"')
def test_docs_site_builds_strict_with_the_api_reference(tmp_path):
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    # The home page is the README; every public name of the engine has its entry.
    assert "Generative" in (site / "index.html").read_text(encoding="utf-8")
    from napari_gr2r import engine

    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    absent = [name for name in engine.__all__ if f'id="napari_gr2r.engine.{name}"' not in api]
    assert not absent, f"missing from the API reference: {absent}"
