"""Sphinx configuration for the skdeepcluster documentation.

Build from the repository root with::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Everything is built offline: no intersphinx, no remote fonts. Files that live
outside ``docs/`` (benchmark tables, the changelog) and the command-line help
are copied or rendered into ``docs/generated/`` when the build starts, so the
pages that include them never point at a missing file.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
os.environ.setdefault("MPLBACKEND", "Agg")

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

import skdeepcluster  # noqa: E402

# -- Project information -----------------------------------------------------

project = "skdeepcluster"
author = "The skdeepcluster developers"
copyright = f"{date.today().year}, {author}"
release = skdeepcluster.__version__
version = ".".join(release.split(".")[:2])

# -- General configuration ---------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = [
    "_build",
    "Thumbs.db",
    ".DS_Store",
    "examples/*.rst",  # the gallery's README; sphinx-gallery renders it
    "generated/included/**",  # markdown pulled into other pages by include
    "**.ipynb_checkpoints",
]
default_role = "literal"
pygments_style = "sphinx"

# autodoc / autosummary: one page per public object under docs/generated/.
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"  # numpydoc docstrings carry the types
autoclass_content = "class"
add_module_names = False

# numpydoc renders the Parameters/Attributes sections; the templates list
# members themselves.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# myst: markdown pages and included benchmark tables / changelog.
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# -- sphinx-gallery ----------------------------------------------------------

sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",  # run every plot_*.py example
    "ignore_pattern": r"__init__\.py",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "image_scrapers": ("matplotlib",),
    "matplotlib_animations": False,
    "doc_module": ("skdeepcluster",),
    "backreferences_dir": "generated/backreferences",
    "reference_url": {"skdeepcluster": None},
    "show_memory": False,
    "min_reported_time": 1,
    "default_thumb_file": None,
}

# -- HTML output -------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"skdeepcluster {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_show_sourcelink = False
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_depth": 2,
    "show_prev_next": True,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version", "theme-version"],
}
html_sidebars = {
    "index": [],
    "getting_started": [],
    "changelog": [],
    "benchmarks": [],
}
html_context = {"default_mode": "light"}

# -- Files generated at build start -------------------------------------------

GENERATED = DOCS / "generated" / "included"
_HEADING = re.compile(r"^(#{1,6})\s")


def _markdown_headings(text: str) -> list[tuple[int, int]]:
    """(line index, level) of every ATX heading outside fenced code blocks."""
    found, fence = [], None
    for i, line in enumerate(text.splitlines()):
        stripped = line.lstrip()
        if stripped.startswith(("```", "~~~")):
            marker = stripped[:3]
            if fence is None:
                fence = marker
            elif marker == fence:
                fence = None
            continue
        match = _HEADING.match(line) if fence is None else None
        if match:
            found.append((i, len(match.group(1))))
    return found


_RELATIVE_LINK = re.compile(r"!?\[([^\]]*)\]\((?![a-zA-Z][a-zA-Z0-9+.-]*:|#)([^)\s]+)\)")


def _unlink_relative(text: str) -> str:
    """``[text](relative/path)`` -> ``text (`relative/path`)``: such links point into the
    repository, not into the documentation, and would be broken references here."""
    return _RELATIVE_LINK.sub(lambda m: f"{m.group(1)} (`{m.group(2)}`)", text)


def _normalise_markdown(text: str, *, top: int, drop_title: bool = False) -> tuple[str, str]:
    """Drop a leading H1 title (returned) and shift headings so the top level is ``top``.

    Relative links are turned into plain text (see ``_unlink_relative``).
    """
    text = _unlink_relative(text)
    lines = text.splitlines()
    title = ""
    headings = _markdown_headings(text)
    if drop_title and headings and headings[0][1] == 1:
        idx = headings[0][0]
        if not any(line.strip() for line in lines[:idx]):
            title = lines[idx].lstrip("#").strip()
            lines = lines[idx + 1 :]
    text = "\n".join(lines) + "\n"
    headings = _markdown_headings(text)
    if not headings:
        return text, title
    shift = top - min(level for _, level in headings)
    lines = text.splitlines()
    for idx, level in headings:
        new = min(max(level + shift, 1), 6)
        lines[idx] = "#" * new + lines[idx][level:]
    return "\n".join(lines) + "\n", title


def _write_if_changed(path: Path, text: str) -> None:
    """Write ``text`` unless identical, so incremental builds stay incremental."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def _generate_benchmarks() -> None:
    """``generated/included/benchmarks.md``: every ``benchmarks/results/*.md`` in turn."""
    results = ROOT / "benchmarks" / "results"
    files = sorted(results.glob("*.md")) if results.is_dir() else []
    order = {"core.md": 0, "quality.md": 1}
    files.sort(key=lambda p: (order.get(p.name, 2), p.name))
    parts = []
    for path in files:
        body, title = _normalise_markdown(
            path.read_text(encoding="utf-8"), top=3, drop_title=True
        )
        title = title or path.stem.replace("_", " ").capitalize()
        parts.append(
            f"## {title}\n\n"
            f"*From* `benchmarks/results/{path.name}`.\n\n{body}\n"
        )
    if not parts:
        parts.append(
            "```{note}\nNo benchmark results were found in `benchmarks/results/` when this "
            "page was built. Run the commands above to produce them.\n"
            "```\n"
        )
    _write_if_changed(GENERATED / "benchmarks.md", "\n".join(parts))


def _generate_changelog() -> None:
    """``generated/included/changelog.md``: ``CHANGELOG.md`` without its title."""
    path = ROOT / "CHANGELOG.md"
    if path.exists():
        body, _ = _normalise_markdown(path.read_text(encoding="utf-8"), top=2, drop_title=True)
    else:
        body = "No changes recorded yet.\n"
    _write_if_changed(GENERATED / "changelog.md", body)


def _generate_cli_help() -> None:
    """``generated/included/cli_*.txt``: the CLI's ``--help`` output."""
    env = dict(os.environ, COLUMNS="88", NO_COLOR="1", PYTHONPATH=str(ROOT))
    for name, args in {
        "main": ["--help"],
        "cluster": ["cluster", "--help"],
        "demo": ["demo", "--help"],
    }.items():
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "skdeepcluster", *args],
                capture_output=True,
                text=True,
                env=env,
                cwd=ROOT,
                timeout=120,
                check=False,
            )
            text = proc.stdout if proc.returncode == 0 and proc.stdout.strip() else ""
        except (OSError, subprocess.SubprocessError):
            text = ""
        if not text:
            text = f"(skdeepcluster {' '.join(args)} was not available when the docs were built)\n"
        _write_if_changed(GENERATED / f"cli_{name}.txt", text)


_generate_benchmarks()
_generate_changelog()
_generate_cli_help()
