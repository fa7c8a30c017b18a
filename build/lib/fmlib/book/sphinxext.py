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

It is listed in ``_config.yml`` under ``sphinx.extra_extensions`` and needs nothing else.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

__all__ = ["add_markdown_download", "chapter_source", "drop_duplicate_scripts", "setup"]

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


def setup(app: Any) -> dict[str, Any]:
    """Register the hooks after sphinx-book-theme's header buttons (priority 501) and the page's scripts."""
    app.connect("html-page-context", add_markdown_download, priority=600)
    app.connect("html-page-context", drop_duplicate_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
