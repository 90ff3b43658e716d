"""The report's two pages from one context: index.html (autoescaped) and report.md (every data string
backslash-escaped, no HTML entities).

Both templates ship in ``msc_bayes/reporting/templates``; an undefined name in either is an error.
"""

from __future__ import annotations

import re
import urllib.parse
from functools import cache

import jinja2

from msc_bayes import INTERVAL_PROB

#: Characters escaped with a backslash (CommonMark lets a backslash escape any ASCII punctuation, and it then
#: stands for itself): emphasis, code, links and images, tables, headings, HTML and entities, strikethrough
_MD_SPECIAL = frozenset("\\`*_[]|#<>&~")


def md_escape(text: object) -> str:
    """Text safe inside Markdown, one line: every markup character backslash-escaped ("<" is written ``\\<``,
    which renders as "<": never HTML, an entity, a link or emphasis); a list marker at the start and a GFM
    autolink ("www.", "://") are escaped too."""
    s = "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in str(text))
    s = s.replace("\r", " ").replace("\n", " ").replace("://", "\\://").replace("www.", "www\\.")
    if re.match(r"[-+=](\s|$|[-=])", s):  # a list marker, thematic break or heading underline
        s = "\\" + s
    return re.sub(r"^(\d+)([.)])(?=\s|$)", r"\1\\\2", s)  # an ordered list marker


def md_image(title: str, file: str) -> str:
    """A Markdown image whose path (from a spec's file name) is percent-encoded: no markup can break out."""
    return f"![{md_escape(title)}]({urllib.parse.quote(file)})"


@cache
def _environment(markdown: bool) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("msc_bayes.reporting", "templates"), autoescape=not markdown,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=markdown)
    if markdown:
        env.filters["md_escape"] = md_escape
        env.globals["md_image"] = md_image
    env.globals["interval_percent"] = f"{INTERVAL_PROB:.0%}"
    env.globals["zip"] = zip
    return env


def render_html(context: dict) -> str:
    """index.html from the package template, autoescaped."""
    return _environment(False).get_template("report.html.j2").render(**context)


def render_markdown(context: dict) -> str:
    """report.md: the same content as index.html, figures as files in figures/."""
    return _environment(True).get_template("report.md.j2").render(**context)
