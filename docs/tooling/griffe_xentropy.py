r"""Griffe extension for the xentropy docs: the package layout, and reST docstrings as Markdown.

Layout: ``xentropy.backends`` and ``xentropy.conformance`` live in ``backends/`` and
``conformance/`` beside ``xentropy/`` (setuptools ``package-dir``), which griffe's static finder
cannot see; :class:`XentropyDocs` loads them as submodules of ``xentropy`` once the package is
loaded, so ``::: xentropy.backends.torch.functional`` works from a source checkout.

Docstrings: the package writes its docstrings for ``help()`` and Sphinx, with Google-style
sections (``Args:``, ``Returns:``) around reST: ``.. math::`` blocks, ``:math:`` and ``:func:``
roles, ``::`` literal blocks, simple tables and doctests. Each docstring is rewritten into the
Markdown that mkdocstrings renders (``$...$`` / ``$$...$$`` for pymdownx.arithmatex, inline
code for the cross-reference roles, fenced code for literal blocks and doctests, pipe tables),
before griffe parses its sections. The source stays as it is.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import griffe

SUBPACKAGE_DIRECTORIES = {"backends": "backends", "conformance": "conformance"}

_MATH_ROLE = re.compile(r":math:`([^`]*)`")
_XREF_ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|exc|obj):`~?\.?([^`]*)`")
_TABLE_BORDER = re.compile(r"^( *)(=+)( +=+)+ *$")


class XentropyDocs(griffe.Extension):
    """Attach ``backends/`` and ``conformance/`` to ``xentropy``; turn reST into Markdown."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if pkg.name != "xentropy" or pkg.filepath is None:
            return
        root = Path(str(pkg.filepath)).parent.parent
        for name, directory in SUBPACKAGE_DIRECTORIES.items():
            init = root / directory / "__init__.py"
            if name not in pkg.members and init.exists():
                module = loader._load_module(name, init, parent=pkg)
                pkg.set_member(name, module)
                loader.expand_exports(module)
                loader.expand_wildcards(module, external=False)
        for obj in _walk(pkg):
            if obj.docstring is not None:
                obj.docstring.value = rest_to_markdown(obj.docstring.value)


def _walk(obj: griffe.Object):
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member)


def rest_to_markdown(text: str) -> str:
    """The reST constructs of xentropy's docstrings, as Markdown (the rest is left as is)."""
    lines = split_grouped_parameters(text.splitlines())
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        indent = line[: len(line) - len(line.lstrip())]
        if stripped == ".. math::":
            body, i = _indented_block(lines, i + 1, len(indent))
            out += ["", f"{indent}$$", *(indent + b for b in body), f"{indent}$$", ""]
            continue
        if stripped.endswith("::") and not stripped.startswith(".."):
            body, end = _indented_block(lines, i + 1, len(indent))
            if body:
                lead = line.rstrip()[:-2].rstrip()
                if lead.strip():
                    out.append(lead + ":")
                out += ["", f"{indent}```python", *(indent + b for b in body), f"{indent}```", ""]
                i = end
                continue
        if stripped.startswith(">>>"):
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
                i += 1
            out += ["", f"{indent}```pycon", *(indent + b for b in block), f"{indent}```", ""]
            continue
        if _TABLE_BORDER.match(line):
            table, i = _simple_table(lines, i)
            out += ["", *(indent + row for row in table), ""]
            continue
        out.append(_inline(line))
        i += 1
    return "\n".join(out)


def split_grouped_parameters(lines: list[str]) -> list[str]:
    """``a, b, c: description`` in an ``Args:`` section as one entry per parameter.

    The docstrings group parameters that share a description (the list of names may wrap onto
    the next line); Google-style parsing wants one name per entry.
    """
    out: list[str] = []
    i, item_indent = 0, None
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped in _ARGS_HEADINGS:
            item_indent = None
            out.append(line)
            i += 1
            while i < len(lines) and not lines[i].strip():
                out.append(lines[i])
                i += 1
            if i < len(lines):
                item_indent = _depth(lines[i])
            continue
        if item_indent is not None and stripped and _depth(line) < item_indent:
            item_indent = None
        if item_indent is not None and stripped and _depth(line) == item_indent:
            head, j = stripped, i
            while _NAMES_SO_FAR.match(head) and j + 1 < len(lines):
                j += 1
                head = f"{head} {lines[j].strip()}"
            match = _GROUPED_ENTRY.match(head)
            if match and "," in match.group(1):
                names = [n.strip() for n in match.group(1).split(",")]
                body, end = _indented_block(lines, j + 1, item_indent)
                pad = " " * item_indent
                for name in names:
                    out.append(f"{pad}{name}: {match.group(2)}")
                    out += [f"{pad}    {b}" for b in body]
                i = end
                continue
        out.append(line)
        i += 1
    return out


_ARGS_HEADINGS = {"Args:", "Arguments:", "Parameters:", "Params:"}
_NAMES_SO_FAR = re.compile(r"^\w+(, *\w+)*, *$")
_GROUPED_ENTRY = re.compile(r"^(\w+(?:, *\w+)+): *(.*)$")


def _inline(line: str) -> str:
    line = _MATH_ROLE.sub(lambda m: f"${m.group(1)}$", line)
    return _XREF_ROLE.sub(lambda m: f"``{m.group(1)}``", line)


def _indented_block(lines: list[str], start: int, indent: int) -> tuple[list[str], int]:
    """The lines indented deeper than ``indent`` from ``start`` (blank lines inside kept)."""
    end = start
    while end < len(lines) and (not lines[end].strip() or _depth(lines[end]) > indent):
        end += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    body = [ln for ln in lines[start:end]]
    while body and not body[0].strip():
        body.pop(0)
    if not body:
        return [], start
    base = min(_depth(ln) for ln in body if ln.strip())
    return [ln[base:] for ln in body], end


def _depth(line: str) -> int:
    return len(line) - len(line.lstrip())


def _simple_table(lines: list[str], start: int) -> tuple[list[str], int]:
    """A reST simple table from ``start`` as a pipe table, and the index after it.

    Columns come from the border line. A line whose first column is blank continues the row
    above (reST's rule); in a body that holds blank lines, the blank lines separate rows
    instead, so a first-column cell may wrap too.
    """
    border = lines[start]
    spans = [(m.start(), m.end()) for m in re.finditer(r"=+", border)]
    borders = [start]
    end = start + 1
    while end < len(lines) and len(borders) < 3:
        if _TABLE_BORDER.match(lines[end]):
            borders.append(end)
            if end + 1 >= len(lines) or not lines[end + 1].strip():
                break
        end += 1
    header: list[str] | None = None
    if len(borders) == 3:
        header = _cells([lines[k] for k in range(borders[0] + 1, borders[1])], spans)
        body_lines = lines[borders[1] + 1 : borders[2]]
    else:
        body_lines = lines[borders[0] + 1 : borders[-1]]
    blank_separated = any(not ln.strip() for ln in body_lines)
    groups: list[list[str]] = []
    for ln in body_lines:
        if not ln.strip():
            groups.append([])
            continue
        first = ln[spans[0][0] : spans[1][0]].strip() if len(spans) > 1 else ln.strip()
        if not groups or (not blank_separated and first) or not groups[-1]:
            groups.append([ln])
        else:
            groups[-1].append(ln)
    rows = [_cells(group, spans) for group in groups if group]
    header = header or [""] * len(spans)
    table = [_row(header), "|" + "|".join(" --- " for _ in spans) + "|"]
    table += [_row(cells) for cells in rows]
    return table, borders[-1] + 1


def _cells(group: list[str], spans: list[tuple[int, int]]) -> list[str]:
    cells = []
    for k, (begin, _) in enumerate(spans):
        stop = spans[k + 1][0] if k + 1 < len(spans) else None
        parts = [ln[begin:stop].strip() for ln in group]
        cells.append(" ".join(p for p in parts if p))
    return cells


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(_inline(c).replace("|", "\\|") for c in cells) + " |"
