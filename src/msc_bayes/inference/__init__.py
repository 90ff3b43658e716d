"""Inference: spec + evidence -> a fitted, self-describing posterior (`Fit`), with nutpie.

- :mod:`~msc_bayes.inference.engine`: the `Engine` (compiled models, models built ahead, the
  helper process, recent fits) and its default instance :data:`ENGINE`; `build` and `structure_key`;
- :mod:`~msc_bayes.inference.sampling`: one nutpie run (settings checked, data set, one
  `SamplingError`) and the DataTree with its provenance attrs;
- :mod:`~msc_bayes.inference.result`: `Fit` and `versions`;
- :mod:`~msc_bayes.inference.compile_cache`: compiled models on disk, compiled with fast-math off;
- :mod:`~msc_bayes.inference.helper`: the helper process that compiles ahead;
- :mod:`~msc_bayes.inference.gate`: fitting with the convergence gate (`fit_gated`, `Attempt`).

`fit`, `compiled`, `precompile`, `fit_cached` and `remember_fit` are the methods of
:data:`ENGINE`, looked up on it at each access: whatever replaces a method of ``ENGINE`` (a
test's stub) is what every caller gets, with the method's own signature.
"""

from msc_bayes.inference.engine import ENGINE, Engine, build, structure_key
from msc_bayes.inference.gate import (
    REFIT_TARGET_ACCEPT,
    Attempt,
    fit_gated,
    raised_target_accept,
)
from msc_bayes.inference.result import Fit, versions

#: The default engine's methods offered as module-level functions.
_ENGINE_FUNCTIONS = ("compiled", "fit", "fit_cached", "precompile", "remember_fit")


def __getattr__(name: str):
    if name in _ENGINE_FUNCTIONS:
        return getattr(ENGINE, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_ENGINE_FUNCTIONS])


__all__ = [
    "ENGINE",
    "REFIT_TARGET_ACCEPT",
    "Attempt",
    "Engine",
    "Fit",
    "build",
    "compiled",
    "fit",
    "fit_cached",
    "fit_gated",
    "precompile",
    "raised_target_accept",
    "remember_fit",
    "structure_key",
    "versions",
]
