"""The worked sensitivity notebook runs top to bottom (quick mode: short chains, few compiles)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "sensitivity.ipynb"


@pytest.mark.slow
def test_sensitivity_notebook_runs_in_quick_mode(monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")

    monkeypatch.setenv("MSC_BAYES_QUICK", "1")
    monkeypatch.delenv("MSC_BAYES_SCHEDULER", raising=False)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells), "a tagged parameter cell"
    start = time.perf_counter()
    nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    seconds = time.perf_counter() - start
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) >= 8, "every analysis draws its figure"
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "quick mode" in text
    print(f"notebook: {seconds:.0f} s")  # shown with pytest -s; see tests/test_notebook.py
    assert os.environ["MSC_BAYES_QUICK"] == "1"
