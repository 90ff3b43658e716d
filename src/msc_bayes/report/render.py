"""The report's two pages from one context: index.html (autoescaped) and report.md (every data string escaped).

Both templates ship in ``msc_bayes/report/templates``; an undefined name in either is an error.
"""

from __future__ import annotations

import urllib.parse
from functools import cache

import jinja2

from msc_bayes import INTERVAL_PROB


def md_escape(text: object) -> str:
    """Text safe inside Markdown (and inline HTML): markup characters escaped, one line."""
    s = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for ch in "\\`*_[]|#":
        s = s.replace(ch, "\\" + ch)
    return s.replace("\r", " ").replace("\n", " ")


def md_image(title: str, file: str) -> str:
    """A Markdown image whose path (from a spec's file name) is percent-encoded: no markup can break out."""
    return f"![{md_escape(title)}]({urllib.parse.quote(file)})"


@cache
def _environment(markdown: bool) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("msc_bayes.report", "templates"), autoescape=not markdown,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=markdown)
    if markdown:
        env.filters["md_escape"] = md_escape
        env.globals["md_image"] = md_image
    env.globals["interval_percent"] = f"{INTERVAL_PROB:.0%}"
    return env


def render_html(context: dict) -> str:
    """index.html from the package template, autoescaped."""
    return _environment(False).get_template("report.html.j2").render(**context)


def render_markdown(context: dict) -> str:
    """report.md: the same content as index.html, figures as files in figures/."""
    return _environment(True).get_template("report.md.j2").render(**context)
