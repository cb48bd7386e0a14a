"""MkDocs hooks: the README as the site's home page, and links that leave docs/.

The pages under docs/ link to files elsewhere in the repository (benchmark results, their
figures, the sample data's README) with relative paths, so that they work when the pages are
read on GitHub. MkDocs only knows the files under docs/, so these hooks:

- build the home page (``index.md``) from README.md, its links rewritten to be relative to docs/;
- copy each image that a page takes from outside docs/ into the site (under ``_repo/``) and point
  the page at the copy;
- turn each other link that leaves docs/ into a link to the file on the repository's web page
  (``repo_url``), the file being checked to exist first;
- report a link that leaves docs/ to a missing file as a warning, which ``mkdocs build --strict``
  turns into a failure (MkDocs itself checks the links between pages);
- read the engine's docstrings as they are written for Python's help and doctest: a run of
  ``>>>`` lines becomes a Python console block (Markdown would make it a quotation), and a Sphinx
  role such as ``:func:`~napari_gr2r.engine.denoise` `` becomes code (``denoise``).
"""

from __future__ import annotations

import logging
import posixpath
import re
from pathlib import Path

from markdown import Extension
from markdown.preprocessors import Preprocessor
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

log = logging.getLogger("mkdocs.hooks.repo_links")

LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)(\))")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"}
COPY_PREFIX = "_repo"
BRANCH = "main"
ROLE = re.compile(r":(?:py:)?(?:mod|class|func|meth|attr|data|exc|obj|const):`(~?)([^`]+)`")
FENCE = re.compile(r"^\s*(```|~~~)")
PROMPT = re.compile(r"^(\s*)>>> ")


class _DocstringLines(Preprocessor):
    """Doctest runs into ``pycon`` blocks and Sphinx roles into code, outside fenced blocks."""

    def run(self, lines):
        out, fenced, i = [], False, 0
        while i < len(lines):
            line = lines[i]
            if FENCE.match(line):
                fenced = not fenced
            prompt = None if fenced else PROMPT.match(line)
            if prompt is None:
                out.append(line if fenced else ROLE.sub(_role, line))
                i += 1
                continue
            indent = prompt.group(1)
            out += ["", f"{indent}```pycon"]
            while i < len(lines) and lines[i].strip() and lines[i].startswith(indent):
                out.append(lines[i])
                i += 1
            out += [f"{indent}```", ""]
        return out


def _role(match: re.Match) -> str:
    short, name = match.groups()
    return f"`{name.rsplit('.', 1)[-1] if short else name}`"


class DocstringMarkdown(Extension):
    def extendMarkdown(self, md):  # Markdown's API names it so
        md.preprocessors.register(_DocstringLines(md), "napari_gr2r_docstrings", 30)


@event_priority(100)  # before mkdocstrings reads the Markdown extensions
def on_config(config):
    config.markdown_extensions.append(DocstringMarkdown())
    return config


def _is_relative(target: str) -> bool:
    return not (re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith(("#", "/")))


def _split(target: str) -> tuple[str, str]:
    path, hash_, anchor = target.partition("#")
    return path, hash_ + anchor


def _root(config) -> Path:
    return Path(config.config_file_path).resolve().parent


def _readme_as_index(readme: str, root: Path, docs: Path) -> str:
    """README.md with its relative links made relative to docs/ (where index.md lives)."""

    def fix(match: re.Match) -> str:
        head, target, tail = match.groups()
        if not _is_relative(target):
            return match.group(0)
        path, anchor = _split(target)
        if not path:
            return match.group(0)
        new = Path(posixpath.relpath((root / path).as_posix(), docs.as_posix())).as_posix()
        return f"{head}{new}{anchor}{tail}"

    return LINK.sub(fix, readme)


def on_files(files, config):
    root, docs = _root(config), Path(config.docs_dir).resolve()
    readme = root / "README.md"
    if readme.is_file() and files.get_file_from_path("index.md") is None:
        text = _readme_as_index(readme.read_text(encoding="utf-8"), root, docs)
        files.append(File.generated(config, "index.md", content=text))
    # Images taken from outside docs/: copied into the site under _repo/.
    for page in [f for f in files if f.src_uri.endswith(".md")]:
        text = page.content_string if page.generated_by else Path(page.abs_src_path).read_text(
            encoding="utf-8")
        for target in LINK.findall(text):
            path, _ = _split(target[1])
            if not _is_relative(target[1]) or Path(path).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            source = (docs / posixpath.dirname(page.src_uri) / path).resolve()
            if source.is_file() and not source.is_relative_to(docs) and source.is_relative_to(root):
                uri = f"{COPY_PREFIX}/{source.relative_to(root).as_posix()}"
                if files.get_file_from_path(uri) is None:
                    files.append(File.generated(config, uri, abs_src_path=str(source)))
    return files


def on_page_markdown(markdown, page, config, files):
    root, docs = _root(config), Path(config.docs_dir).resolve()
    page_dir = posixpath.dirname(page.file.src_uri)
    repo_url = (config.repo_url or "").rstrip("/")

    def fix(match: re.Match) -> str:
        head, target, tail = match.groups()
        path, anchor = _split(target)
        if not _is_relative(target) or not path:
            return match.group(0)
        source = (docs / page_dir / path).resolve()
        if source.is_relative_to(docs):
            return match.group(0)  # a page or file of the site: MkDocs checks it
        if not source.is_relative_to(root) or not source.exists():
            log.warning("Doc file '%s' links to '%s', which does not exist in the repository.",
                        page.file.src_uri, target)
            return match.group(0)
        rel = source.relative_to(root).as_posix()
        if source.suffix.lower() in IMAGE_SUFFIXES and source.is_file():
            new = posixpath.relpath(f"{COPY_PREFIX}/{rel}", page_dir or ".")
        else:
            kind = "tree" if source.is_dir() else "blob"
            new = f"{repo_url}/{kind}/{BRANCH}/{rel}"
        return f"{head}{new}{anchor}{tail}"

    return LINK.sub(fix, markdown)
