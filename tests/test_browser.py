"""The report's index.html in a real browser (headless Chromium, Debian's ``chromium`` package, which
``.ci/run`` installs): every image loads, nothing overflows a 1280 px window, and the summary of
findings is in the first screen (1280 x 800).

The reports are built in seconds from fake fits (``test_report``'s fixture: sampling replaced by
``fake_fit``, a fake sensitivity result): one of the fixture's evidence (a study named like a script
tag), one of the bundled evidence in ``data/`` (the Evidence table as a reader sees it). A copy of its
``index.html`` gets a small script that measures the page once it has loaded and writes the result as
JSON into ``<pre id="result">``; ``chromium --headless --dump-dom`` prints the page after the script
ran. Skipped, with the reason, where no Chromium is installed.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_diagnostics import fake_fit, write_fixture
from test_report import fake_report_sensitivity

from msc_bayes import inference
from msc_bayes.cli import main
from msc_bayes.reporting import sections as report_sections

#: The window of the first screen: a common laptop's browser window.
WIDTH, HEIGHT = 1280, 800
#: How much of the summary (or all of it, if shorter) the first screen must show, in CSS px.
SUMMARY_SHOWN = 200

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (Debian package "
                                "'chromium'; .ci/run installs it where apt-get is available)")

#: Runs on load; measures what the test checks; writes JSON into <pre id="result">.
PROBE = """<pre id="result"></pre><script>
window.addEventListener('load', function () {
  var W = %(width)d, H = %(height)d, root = document.documentElement;
  function name(e) {
    var s = e.tagName.toLowerCase() + (e.id ? '#' + e.id : '');
    if (typeof e.className === 'string' && e.className.trim()) s += '.' + e.className.trim().split(/\\s+/).join('.');
    var a = e.parentElement;
    while (a && !a.id) a = a.parentElement;
    return (a ? '#' + a.id + ' ' : '') + s;
  }
  var images = Array.from(document.images).map(function (i) {
    return {alt: i.alt, loaded: i.complete && i.naturalWidth > 0};
  });
  var limit = Math.min(W, root.clientWidth), wide = new Set(), over = [];
  document.querySelectorAll('body *').forEach(function (e) {
    var r = e.getBoundingClientRect();
    if (r.width > 0 && r.right > limit + 0.5) wide.add(e);
  });
  wide.forEach(function (e) {  // the outermost only: a wide table, not each of its cells
    if (!wide.has(e.parentElement)) over.push(name(e) + ' ends at ' + Math.round(e.getBoundingClientRect().right) + ' px');
  });
  var s = document.getElementById('summary'), summary = null;
  if (s) {
    var r = s.getBoundingClientRect();
    summary = {top: r.top + window.scrollY, height: r.height};
  }
  document.getElementById('result').textContent = JSON.stringify({
    inner_width: window.innerWidth, client_width: root.clientWidth, scroll_width: root.scrollWidth,
    images: images, overflowing: over, summary: summary});
});
</script>"""


#: The pages tested: the fixture's evidence and two specs (a study named like a script tag, the sensitivity
#: section), and the bundled evidence in data/ (every study in the Evidence table) with the fixture's EDSS spec.
PAGES = ("fixture", "bundled evidence")


@pytest.fixture(scope="module", params=PAGES)
def report(request, tmp_path_factory) -> Path:
    """index.html of a report built from fake fits (see PAGES)."""
    folder = tmp_path_factory.mktemp("browser")
    data, edss_spec, ae_spec = write_fixture(folder)
    specs, extra = [str(edss_spec), str(ae_spec)], []
    if request.param == "bundled evidence":  # the Evidence table of every study; one model is enough
        data, specs, extra = Path(__file__).parents[1] / "data", [str(edss_spec)], ["--no-sensitivity"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(inference.ENGINE, "fit", lambda spec, evidence, **kw: fake_fit(spec, evidence, **kw))
        mp.setattr(inference.ENGINE, "precompile", lambda models: [])
        mp.setattr(report_sections, "sensitivity_for_report", lambda spec, evidence, **kw: fake_report_sensitivity())
        code = main(["report", "--data", str(data), "--models", *specs, "--out", str(folder / "run"), *extra])
    assert code == 0
    return folder / "run" / "index.html"


def chromium(*args: str, user_data: Path) -> subprocess.CompletedProcess:
    """Headless Chromium at the first screen's window size, offline, with a throwaway profile."""
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={user_data}", f"--window-size={WIDTH},{HEIGHT}", "--virtual-time-budget=5000",
               *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def measure(page: Path, tmp_path: Path) -> dict:
    """The probe's measurements of `page` (a copy with the probe added) in headless Chromium."""
    text = page.read_text(encoding="utf-8")
    assert "</body>" in text
    probed = tmp_path / "probed.html"
    probed.write_text(text.replace("</body>", PROBE % {"width": WIDTH, "height": HEIGHT} + "</body>"),
                      encoding="utf-8")
    if (page.parent / "figures").is_dir():  # a page that references its figures finds them beside the copy
        shutil.copytree(page.parent / "figures", tmp_path / "figures", dirs_exist_ok=True)
    done = chromium("--dump-dom", probed.as_uri(), user_data=tmp_path / "profile")
    found = re.search(r'<pre id="result">(.*?)</pre>', done.stdout, flags=re.DOTALL)
    assert done.returncode == 0 and found and found.group(1), (
        f"Chromium gave no measurements (exit {done.returncode}): {done.stderr[-2000:]}")
    return json.loads(html.unescape(found.group(1)))


@pytest.fixture(scope="module")
def measured(report, tmp_path_factory) -> dict:
    return measure(report, tmp_path_factory.mktemp("chromium"))


def test_the_window_is_the_first_screen(measured):
    assert measured["inner_width"] == WIDTH  # else --window-size did not reach the layout


def test_every_image_loads(measured):
    images = measured["images"]
    assert images, "the report shows no figure"
    assert [i["alt"] for i in images if not i["loaded"]] == []


def test_nothing_overflows_a_1280_px_window(measured):
    assert measured["overflowing"] == []
    assert measured["scroll_width"] <= measured["client_width"]


def test_the_summary_of_findings_is_in_the_first_screen(measured):
    summary = measured["summary"]
    assert summary is not None, "the page has no element with id 'summary'"
    shown = HEIGHT - summary["top"]
    assert shown >= min(summary["height"], SUMMARY_SHOWN), (
        f"the summary starts {summary['top']:.0f} px down; the first screen is {HEIGHT} px high")


def test_the_probe_finds_what_it_looks_for(tmp_path):
    """The checks can fail: a page with a too-wide table, a broken image and the summary below the first screen."""
    page = tmp_path / "page" / "index.html"
    page.parent.mkdir()
    page.write_text('<!DOCTYPE html><html><body><div style="height: 900px"></div>'
                    '<section id="evidence"><table style="width: 1500px"><tr><td>wide</td></tr></table></section>'
                    '<img alt="missing figure" src="figures/none.png"><section id="summary"><p>late</p></section>'
                    '</body></html>', encoding="utf-8")
    found = measure(page, tmp_path)
    assert found["images"] == [{"alt": "missing figure", "loaded": False}]
    assert [o.split(" ends at")[0] for o in found["overflowing"]] == ["#evidence table"]
    assert found["summary"]["top"] >= HEIGHT
