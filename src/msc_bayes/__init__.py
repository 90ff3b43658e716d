"""msc_bayes: Bayesian evidence synthesis of MSC therapy in MS and NMO.

One import gives the verbs (each loaded on first use, so ``import msc_bayes`` stays light)::

    import msc_bayes as mb
    evidence = mb.load_evidence("data")              # msc_bayes.evidence.load_evidence
    spec = mb.load_spec("models/edss_change.toml")   # msc_bayes.spec.load_spec
    result = mb.fit(spec, evidence)                  # msc_bayes.inference.fit (the default engine's)
    result.summary()                                 # indexed by quantity, 95% ETI columns
    mb.report(out="reports/mine")                    # msc_bayes.reporting.report (the report run)
    mb.sensitivity.leave_one_out(spec, evidence)     # the module msc_bayes.sensitivity
    mb.oracle.normal_normal(y, se, ...)              # the module msc_bayes.oracle (exact posterior)
"""

from importlib import import_module

from msc_bayes.errors import ConvergenceError, EvidenceError, SpecError

__version__ = "0.1.0"

#: The one interval used everywhere (tables, figures, text): 95% equal-tailed.
INTERVAL_PROB = 0.95
INTERVAL_KIND = "ETI"

#: The verbs of ``import msc_bayes as mb``: name -> (module, attribute; None = the module itself).
#: Looked up at each access (PEP 562), never stored here: whatever replaces ``msc_bayes.inference.fit``
#: (a test's stub) is what ``mb.fit`` gives.
_VERBS = {
    "load_evidence": ("msc_bayes.evidence", "load_evidence"),
    "load_spec": ("msc_bayes.spec", "load_spec"),
    "fit": ("msc_bayes.inference", "fit"),
    "report": ("msc_bayes.reporting", "report"),
    "sensitivity": ("msc_bayes.sensitivity", None),
    "oracle": ("msc_bayes.oracle", None),
}


def __getattr__(name: str):
    if name in _VERBS:
        module, attribute = _VERBS[name]
        found = import_module(module)
        return found if attribute is None else getattr(found, attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_VERBS])


__all__ = ["INTERVAL_KIND", "INTERVAL_PROB", "ConvergenceError", "EvidenceError", "SpecError", "fit", "load_evidence",
           "load_spec", "oracle", "report", "sensitivity"]
