"""The Help button of the algorithm dialogs: one HTML page per algorithm, rendered from its README section.

QGIS 3.22 shows the Help button when ``helpUrl()`` is not empty and opens the URL with
``QDesktopServices.openUrl``, i.e. the desktop's handler for the file type. A Markdown file would open
in a text editor (or in nothing), where an anchor means nothing, and a ``#fragment`` on a local file
is not passed on by every launcher; so each algorithm gets its own small HTML page, which every
desktop opens in a browser: its README section (the heading that names ``surfacemotion:<id>``) plus
the shared README sections it lists, rendered by :func:`markdown_to_html` (the Markdown subset the
README uses) into a per-user temporary folder. When the page cannot be written the URL is the README
itself with the section's GitHub anchor.
"""
from __future__ import annotations

import html
import os
import re
import tempfile
from typing import List, Optional, Sequence, Tuple

from qgis.PyQt.QtCore import QUrl

from ..core.errors import UserInputError
from ..core.io import write_text

PLUGIN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README_PATH = os.path.join(PLUGIN_DIR, "README.md")

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
_FENCE = "```"


def readme_text(path: Optional[str] = None) -> str:
    """The text of ``path`` (default the plugin's README.md)."""
    with open(path or README_PATH, encoding="utf-8") as handle:
        return handle.read()


def heading_anchor(title: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", title.strip().lower())
    return text.replace(" ", "-")


def _headings(lines: Sequence[str]) -> List[Tuple[int, int, str]]:
    """(line index, level, title) of every heading outside fenced code blocks."""
    found, fenced = [], False
    for index, line in enumerate(lines):
        if line.startswith(_FENCE):
            fenced = not fenced
            continue
        match = None if fenced else _HEADING.match(line)
        if match:
            found.append((index, len(match.group(1)), match.group(2)))
    return found


def readme_section(matches, text: Optional[str] = None) -> Tuple[str, str]:
    """(heading title, Markdown of the section with its heading) of the first README heading for which
    ``matches(title)`` is true; the section ends at the next heading of the same or a higher level.
    Raises KeyError when no heading matches."""
    lines = (readme_text() if text is None else text).splitlines()
    headings = _headings(lines)
    for position, (start, level, title) in enumerate(headings):
        if matches(title):
            end = next((index for index, other_level, _ in headings[position + 1:] if other_level <= level),
                       len(lines))
            return title, "\n".join(lines[start:end]).strip() + "\n"
    raise KeyError("no README heading matches")


def algorithm_section(algorithm_id: str, text: Optional[str] = None) -> Tuple[str, str]:
    """The README section of ``surfacemotion:<algorithm_id>`` (its heading names the id in backticks)."""
    tag = f"`surfacemotion:{algorithm_id}`"
    try:
        return readme_section(lambda title: tag in title, text)
    except KeyError:
        raise KeyError(f"README.md has no heading naming {tag}") from None


# --- a small Markdown renderer: headings, paragraphs, lists, tables, code, emphasis, links -----------

_INLINE_CODE = re.compile(r"`([^`]+)`")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_ITALIC = re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])")


def _inline(text: str) -> str:
    """Inline Markdown of one line as HTML (the text is escaped; code spans are kept verbatim)."""
    codes: List[str] = []

    def keep_code(match) -> str:
        codes.append(f"<code>{html.escape(match.group(1), quote=False)}</code>")
        return f"\x00{len(codes) - 1}\x00"

    text = _INLINE_CODE.sub(keep_code, text.replace("\\|", "|"))
    text = html.escape(text, quote=False)
    text = _LINK.sub(lambda m: f'<a href="{html.escape(m.group(2))}">{m.group(1)}</a>', text)
    text = _BOLD.sub(r"<b>\1</b>", text)
    text = _ITALIC.sub(r"<i>\1</i>", text)
    return re.sub("\x00(\\d+)\x00", lambda m: codes[int(m.group(1))], text)


def _table_cells(line: str) -> List[str]:
    line = re.sub(r"^\s*\|", "", line.rstrip())
    line = re.sub(r"(?<!\\)\|$", "", line)
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line)]


def _is_table_rule(line: str) -> bool:
    return bool(re.fullmatch(r"\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*", line))


def markdown_to_html(text: str, top_level: Optional[int] = None) -> str:
    """HTML body of the Markdown subset the README uses (ATX headings with anchors, paragraphs,
    ``-`` lists, pipe tables, fenced code, inline code, bold, italic and links). With ``top_level``
    the headings are shifted so that the first one has that level."""
    lines, out, index = text.splitlines(), [], 0
    first = next((level for _, level, _ in _headings(lines)), 1)
    shift = 0 if top_level is None else top_level - first
    while index < len(lines):
        line = lines[index]
        if not line.strip():
            index += 1
        elif line.startswith(_FENCE):
            end = next((i for i in range(index + 1, len(lines)) if lines[i].startswith(_FENCE)), len(lines))
            out.append("<pre><code>" + html.escape("\n".join(lines[index + 1:end]), quote=False) + "</code></pre>")
            index = end + 1
        elif _HEADING.match(line):
            hashes, title = _HEADING.match(line).groups()
            level = min(6, max(1, len(hashes) + shift))
            out.append(f'<h{level} id="{heading_anchor(title)}">{_inline(title)}</h{level}>')
            index += 1
        elif line.lstrip().startswith("|") and index + 1 < len(lines) and _is_table_rule(lines[index + 1]):
            rows = [_table_cells(line)]
            index += 2
            while index < len(lines) and lines[index].lstrip().startswith("|"):
                rows.append(_table_cells(lines[index]))
                index += 1
            head = "".join(f"<th>{_inline(cell)}</th>" for cell in rows[0])
            body = "".join("<tr>" + "".join(f"<td>{_inline(cell)}</td>" for cell in row) + "</tr>"
                           for row in rows[1:])
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif re.match(r"^\s*[-*] ", line):
            items: List[str] = []
            while index < len(lines) and lines[index].strip() and not _HEADING.match(lines[index]):
                if re.match(r"^\s*[-*] ", lines[index]):
                    items.append(re.sub(r"^\s*[-*] ", "", lines[index]))
                else:
                    items[-1] += " " + lines[index].strip()
                index += 1
            out.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in items) + "</ul>")
        else:
            paragraph = []
            while (index < len(lines) and lines[index].strip() and not lines[index].startswith(_FENCE)
                   and not _HEADING.match(lines[index]) and not re.match(r"^\s*[-*] ", lines[index])
                   and not lines[index].lstrip().startswith("|")):
                paragraph.append(lines[index].strip())
                index += 1
            out.append("<p>" + _inline(" ".join(paragraph)) + "</p>")
    return "\n".join(out)


_STYLE = ("body{font-family:sans-serif;max-width:60em;margin:1em auto;padding:0 1em;line-height:1.45}"
          "table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:.2em .4em;vertical-align:top}"
          "code{background:#f2f2f2}pre{background:#f2f2f2;padding:.5em;overflow-x:auto}")


def help_page_html(algorithm_id: str, extra_sections: Sequence[str] = (), text: Optional[str] = None) -> str:
    """The complete HTML page of an algorithm: its README section, then the README sections titled
    ``extra_sections`` (e.g. "Output conventions"), then a link to the whole README."""
    text = readme_text() if text is None else text
    title, section = algorithm_section(algorithm_id, text)
    parts = [section] + [readme_section(lambda heading, name=name: heading == name, text)[1]
                         for name in extra_sections]
    readme_url = QUrl.fromLocalFile(README_PATH).toString()
    body = "\n".join(markdown_to_html(part, top_level=1 if index == 0 else 2) for index, part in enumerate(parts))
    anchors = set(re.findall(r' id="([^"]+)"', body))
    # links to README sections that are not on this page go to the README itself
    body = re.sub(r'href="#([^"]+)"', lambda m: m.group(0) if m.group(1) in anchors
                  else f'href="{html.escape(readme_url)}#{m.group(1)}"', body)
    plain_title = html.escape(re.sub(r"[`*]", "", title), quote=False)
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{plain_title}</title>"
            f"<style>{_STYLE}</style></head><body>\n{body}"
            f'\n<p><a href="{html.escape(readme_url)}">The whole README</a></p>\n</body></html>\n')


def help_folder() -> str:
    """Per-user folder of the rendered help pages."""
    user = str(os.getuid()) if hasattr(os, "getuid") else "user"
    return os.path.join(tempfile.gettempdir(), f"surface_motion_help-{user}")


def help_url(algorithm_id: str, extra_sections: Sequence[str] = ()) -> str:
    """file:// URL of the algorithm's help page, written (again) when missing or out of date; when it
    cannot be written, the README with the section's anchor. '' when the README has no such section."""
    try:
        text = readme_text()
        title, _ = algorithm_section(algorithm_id, text)
    except (OSError, KeyError):
        return ""
    try:
        page = help_page_html(algorithm_id, extra_sections, text)
        path = os.path.join(help_folder(), f"{algorithm_id}.html")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not os.path.isfile(path) or readme_text(path) != page:
            write_text(path, page)
        return QUrl.fromLocalFile(path).toString()
    except (OSError, KeyError, UserInputError):
        url = QUrl.fromLocalFile(README_PATH)
        url.setFragment(heading_anchor(title))
        return url.toString()
