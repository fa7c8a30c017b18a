"""A small Sphinx extension for the book: each chapter's .md source for download, and clean page scripts.

sphinx-book-theme's download menu offers a page's Sphinx source; for a chapter that is the executed
notebook (``book/chapters/NAME.ipynb``). The chapter as the authors write it, and as
``python -m fmlib run`` reads it, is the jupytext MyST file ``notebooks/NAME.md``. For every page
built from ``book/chapters/NAME`` whose ``notebooks/NAME.md`` exists, this extension

1. copies ``notebooks/NAME.md`` into the HTML output next to the notebook the theme publishes
   (``_sources/book/chapters/NAME.md``), and
2. adds a ".md" entry to the theme's download menu, right after the ".ipynb" one.

It also drops duplicated inline scripts from every page. Sphinx 7.4 registers an inline script
that an extension adds after the HTML builder has started twice (once with the file name ``None``,
once with ``''``, which it does not see as equal); sphinx-thebe's ``const THEBE_JS_URL = ...`` is
one, so every page raised "SyntaxError: Identifier 'THEBE_JS_URL' has already been declared".

It also ships MathJax with the build: :func:`copy_mathjax` copies MathJax 3.2.2 from the installed
package ``django-static-mathjax`` into ``_static/mathjax/`` (``_config.yml`` points
``mathjax_path`` there), so math renders offline and no page loads anything from the network.

It is listed in ``_config.yml`` under ``sphinx.extra_extensions`` and needs nothing else.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

__all__ = ["add_markdown_download", "chapter_source", "copy_mathjax", "drop_duplicate_scripts", "mathjax_source",
           "setup"]

CHAPTER_PREFIX = "book/chapters/"


def chapter_source(srcdir: str | Path, pagename: str) -> Path | None:
    """The jupytext source ``notebooks/NAME.md`` of the page ``book/chapters/NAME``, or None."""
    if not pagename.startswith(CHAPTER_PREFIX):
        return None
    source = Path(srcdir) / "notebooks" / f"{pagename[len(CHAPTER_PREFIX):]}.md"
    return source if source.is_file() else None


def add_markdown_download(app: Any, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    """``html-page-context`` hook (after the theme's): publish the chapter's .md and link it."""
    source = chapter_source(app.srcdir, pagename)
    if source is None:
        return
    target = Path(app.outdir) / "_sources" / f"{pagename}.md"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    button = {
        "type": "link",
        "url": f"{context['pathto']('_sources', 1)}/{pagename}.md",
        "text": ".md",
        "tooltip": "Download the chapter's source (jupytext MyST: python -m fmlib run reads it)",
        "icon": "fas fa-file-lines",
        "label": "download-markdown-button",
    }
    for group in context.get("header_buttons", []):
        if group.get("label") == "download-buttons":
            buttons = group["buttons"]
            after = next((i + 1 for i, b in enumerate(buttons) if b.get("text") == ".ipynb"), 0)
            buttons.insert(after, button)
            return


def drop_duplicate_scripts(app: Any, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    """``html-page-context`` hook (last): keep one copy of each script, whether its name is None or ''."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple[Any, ...]] = set()
    unique = []
    for script in scripts:
        attributes = getattr(script, "attributes", {})
        key = (getattr(script, "filename", script) or "", *sorted((k, str(v)) for k, v in attributes.items()))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


MATHJAX_UNUSED = shutil.ignore_patterns("*svg*", "*full*", "node-main.js", "mml-chtml.js", "tex-chtml.js")
"""What the book does not load: the SVG output, the other combined builds (8 of MathJax's 24 MB stay)."""


def mathjax_source() -> Path:
    """MathJax 3's ``es5/`` folder (what the CDN serves under ``mathjax@3/es5/``), from its PyPI package."""
    import mathjax  # the PyPI package django-static-mathjax: MathJax 3.2.2's files

    return Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"


def copy_mathjax(static_dir: Path) -> Path:
    """Copy MathJax into ``static_dir/mathjax/es5`` unless that copy is already complete; returns it.

    A copy is complete when its ``.complete`` marker names the package's version; the marker is
    written last, so a copy interrupted half-way is redone.
    """
    source = mathjax_source()
    target = static_dir / "mathjax" / "es5"
    version = (source.parent / "package.json").read_text()
    marker = target / ".complete"
    if marker.is_file() and marker.read_text() == version:
        return target
    shutil.copytree(source, target, dirs_exist_ok=True, ignore=MATHJAX_UNUSED)
    marker.write_text(version)
    return target


def _install_mathjax(app: Any) -> None:
    """``builder-inited`` hook: MathJax into the HTML output's ``_static`` (HTML builders only)."""
    if app.builder.format == "html":
        copy_mathjax(Path(app.outdir) / "_static")


def setup(app: Any) -> dict[str, Any]:
    """Register the hooks after sphinx-book-theme's header buttons (priority 501) and the page's scripts."""
    app.connect("builder-inited", _install_mathjax)
    app.connect("html-page-context", add_markdown_download, priority=600)
    app.connect("html-page-context", drop_duplicate_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
