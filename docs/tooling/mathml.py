"""MkDocs hook: the math of each page as MathML, rendered by the browser with no script.

pymdownx.arithmatex (generic mode) wraps TeX as ``<span class="arithmatex">\\(...\\)</span>``
and ``<div class="arithmatex">\\[...\\]</div>``; this hook converts each to ``<math>`` with
latex2mathml when the page is built, so the site needs no MathJax or KaTeX and no network, at
build time or in the browser. TeX that latex2mathml cannot read is a warning (an error under
``mkdocs build --strict``).
"""

from __future__ import annotations

import html
import logging
import re

from latex2mathml.converter import convert

log = logging.getLogger("mkdocs.hooks.mathml")

_INLINE = re.compile(r'<span class="arithmatex">\\\((.*?)\\\)</span>', re.DOTALL)
_DISPLAY = re.compile(r'<div class="arithmatex">\\\[(.*?)\\\]</div>', re.DOTALL)
# latex2mathml keeps the backslash of an escaped underscore inside a text command
_TEXT_ARGUMENT = re.compile(r"(\\(?:texttt|text|mathrm)\{)([^{}]*)\}")


def on_page_content(content, page, **kwargs):
    def to_mathml(match, display):
        tex = html.unescape(match.group(1)).strip()
        tex = _TEXT_ARGUMENT.sub(lambda m: m.group(1) + m.group(2).replace("\\_", "_") + "}", tex)
        try:
            return convert(tex, display="block" if display else "inline")
        except Exception as error:  # latex2mathml raises many kinds of error
            log.warning("%s: cannot render math %r: %s", page.file.src_uri, tex, error)
            return match.group(0)

    content = _DISPLAY.sub(lambda m: to_mathml(m, True), content)
    return _INLINE.sub(lambda m: to_mathml(m, False), content)
