"""report.md through its template: the exact text (frozen copy).

Every data string is escaped with backslashes (markup characters, HTML, entities, line breaks; no "&lt;"), an image path is percent-encoded,
the banner says what an unconverged model means, and a model without a sensitivity section has none.
"""

from __future__ import annotations

from msc_bayes.reporting import md_escape, md_image, render_markdown

CTX = {"title": "T <x>", "run_name": "run_*1*", "created": "2026-01-01 00:00:00 UTC", "data_path": "data|x",
       "data_hash": "abc", "interval": "95% ETI", "gate": "R-hat ≤ 1.01", "allow_unconverged": True,
       "models": [{"key": "m_1", "name": "M <b>", "converged": False, "reasons": ["R-hat 1.2 > 1.01", "a|b"],
                   "results": "Res\nline", "key_estimates": {"columns": ["quantity", "median"], "rows": [["mu", "−0.10"]],
                                     "probabilities": ["P(x < 1 & y) = 0.50"]},
                   "figures": [{"title": "F [1]", "file": "figures/m 1(x).png", "caption": "cap #1"}],
                   "study_estimates": {"columns": ["arm"], "rows": []},
                   "sensitivity": {"varied": "v`", "figure": {"title": "S", "file": "figures/s.png", "caption": "c"},
                                   "table": {"columns": ["a"], "rows": [["1"]]}, "psense_text": "p",
                                   "psense": {"columns": ["b"], "rows": [["2"], ["3"]]}},
                   "methods": "Meth", "diagnostics": [("draws", "4000")], "attempts": ["a1", "a2"], "warnings": ["w"],
                   "notes": [], "files": ["m_1.nc", "m_1_summary.csv"]},
                  {"key": "k", "name": "N", "converged": True, "reasons": [], "results": "R",
                   "key_estimates": {"columns": ["q"], "rows": [], "probabilities": []}, "figures": [],
                   "study_estimates": {"columns": ["arm"], "rows": [["a:b"]]}, "sensitivity": None, "methods": "M",
                   "diagnostics": [], "attempts": ["a"], "warnings": [], "notes": ["left out\\"], "files": ["k.nc"]}],
       "evidence": {"columns": ["study"], "rows": [["<s>"]]}, "versions": {"pymc": "5", "numpy": "2"},
       "summary": None}
CTX["unconverged"] = [CTX["models"][0]]

EXPECTED = "# T \\<x\\>\n\nRun run\\_\\*1\\*, created 2026-01-01 00:00:00 UTC. Every interval is a 95% ETI (95% equal-tailed interval). Evidence, run and software: at the end.\n\n> **WARNING: NOT CONVERGED.** M \\<b\\> (m\\_1): R-hat 1.2 \\> 1.01; a\\|b. Accepted with --allow-unconverged: do not use these numbers.\n\n## M \\<b\\> (m\\_1)\n\nConvergence: **NOT CONVERGED**: R-hat 1.2 \\> 1.01; a\\|b.\n\n### Results\n\nRes line\n\n| quantity | median |\n|---|---|\n| mu | −0.10 |\n\n- P(x \\< 1 \\& y) = 0.50\n\n### F \\[1\\]\n\n![F \\[1\\]](figures/m%201%28x%29.png)\n\ncap \\#1\n\n### Study estimates\n\n| arm |\n|---|\n\n### Sensitivity analyses\n\nv\\`\n\n![S](figures/s.png)\n\nc\n\n| a |\n|---|\n| 1 |\n\np\n\n| b |\n|---|\n| 2 |\n| 3 |\n\n### Methods\n\nMeth\n\n### Diagnostics\n\n- draws: 4000\n- attempt 1: a1\n- attempt 2: a2\n- warning: w\n\n### Notes (arms left out and why)\n\n- none\n\nFiles: m\\_1.nc, m\\_1\\_summary.csv\n\n## N (k)\n\nConvergence: converged.\n\n### Results\n\nR\n\n| q |\n|---|\n\n### Study estimates\n\n| arm |\n|---|\n| a:b |\n\n### Methods\n\nM\n\n### Diagnostics\n\n- attempt 1: a\n\n### Notes (arms left out and why)\n\n- left out\\\\\n\nFiles: k.nc\n\n## Evidence\n\nWhat each study arm reports, in the sources' own numbers, with its provenance grade, its note and what it contributes (the models that use it; for an outcome that leaves it out, why).\n\n| study |\n|---|\n| \\<s\\> |\n\n## Run and software\n\nRun run\\_\\*1\\*, created 2026-01-01 00:00:00 UTC. Evidence: data\\|x (data hash abc).\n\n- pymc 5\n- numpy 2\n"


def test_markdown_is_the_frozen_text():
    assert render_markdown(CTX) == EXPECTED


def test_markdown_banner_follows_the_gate():
    failed = render_markdown(dict(CTX, allow_unconverged=False))
    assert "a\\|b. The command exits with an error.\n" in failed
    passed = render_markdown(dict(CTX, unconverged=[], allow_unconverged=False))
    assert "All 2 model(s) passed the convergence gate (R-hat ≤ 1.01).\n\n## M" in passed


def test_escaping_filters():
    assert md_escape("a|b\n<i>_x_ & ~y~") == "a\\|b \\<i\\>\\_x\\_ \\& \\~y\\~"  # backslashes, no entities
    assert md_escape("- 1. x") == "\\- 1. x" and md_escape("2) y") == "2\\) y"  # no list item
    assert md_escape("1.3.0") == "1.3.0" and md_escape("-2") == "-2"  # not list markers: left as they are
    assert md_image("t]", "figures/a b).png") == "![t\\]](figures/a%20b%29.png)"
