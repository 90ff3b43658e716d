"""The report: fit every spec, gate on convergence, write one self-contained run folder.

- :mod:`.run`: the run and the files of its folder (`report`, the verb ``mb.report``; `run_report`, `write_outputs`, `spec_paths`, `model_keys`);
- :mod:`.sections`: one model's tables and figures written, its section of the context;
- :mod:`.context`: the one context both pages render;
- :mod:`.results_text` / :mod:`.methods`: the results paragraph (the outcome's declared statements) and the methods;
- :mod:`.views` / :mod:`.numbers`: tables and numbers as the pages show them;
- :mod:`.render`: index.html and report.md from that context through two templates (``templates/``).
"""

from msc_bayes.reporting.render import md_escape, md_image, render_html, render_markdown
from msc_bayes.reporting.run import (
           ModelRun,
           ReportResult,
           model_keys,
           report,
           run_report,
           spec_paths,
           write_outputs,
)

__all__ = ["ModelRun", "ReportResult", "md_escape", "md_image", "model_keys", "render_html", "render_markdown",
           "report", "run_report", "spec_paths", "write_outputs"]
