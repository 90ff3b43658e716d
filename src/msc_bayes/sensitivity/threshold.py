"""The default EDSS threshold of improved / stable / worsened category counts (:func:`threshold_sensitivity`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from msc_bayes.sensitivity.base import (
    ReportRequest,
    add_note,
    finish,
    fit_kwargs,
    prepare,
)
from msc_bayes.sweep import Scenario, concat, run_scenarios


def threshold_sensitivity(spec, evidence, *, thresholds: Sequence[float] = (0.5, 1.0, 1.5),
                          quantities: Sequence[str] | None = None, draws: int | None = None, tune: int | None = None,
                          chains: int | None = None, seed: int | None = None, target_accept: float | None = None,
                          scheduler=None, on_error: str = "record", progress: bool = False) -> pd.DataFrame:
    """Category counts (improved / stable / worsened) read with each default EDSS threshold.

    The spec option ``default_threshold`` applies to count rows whose study states no
    threshold (those arms are listed in ``notes``); thresholds are multiples of 0.5. Each
    threshold compiles its own model. Extra column: ``threshold`` (the spec's own is the base).
    When no count row relies on the default, the threshold changes nothing and the base model
    is refitted (noted).
    """
    if spec.outcome != "edss_change":
        raise ValueError("threshold_sensitivity applies to the edss_change outcome only")
    units = prepare(spec, evidence).units
    affected = [lab for lab, f, t in zip(units["label"], units["formats"], units.get("threshold", pd.Series(
        [np.nan] * len(units)))) if "counts" in f and pd.isna(t)]
    note = ("default threshold applies to: " + ", ".join(affected)) if affected else \
        "no count row without a stated threshold: the default threshold changes nothing"
    fkw = fit_kwargs(draws, tune, chains, seed, target_accept)
    own = float(spec.options["default_threshold"])
    values = list(dict.fromkeys([own] + [float(t) for t in thresholds]))
    # with no count row relying on the default, every threshold is the base model (no compile)
    scenarios = [Scenario("base" if t == own else f"threshold {t:g}",
                          spec if t == own or not affected else spec.replace(options={"default_threshold": t}),
                          evidence, fkw, quantities=quantities, method="mcmc",
                          meta={"family": "threshold", "threshold": t})
                 for t in values]
    df = concat(run_scenarios(scenarios, scheduler=scheduler, on_error=on_error, progress=progress))
    df["notes"] = [add_note(n, note) for n in df["notes"]]
    return finish(df)


class ThresholdFamily:
    """The report's "threshold" family: the default EDSS threshold of category counts (EDSS models)."""

    family = "threshold"

    def applies(self, spec, evidence) -> bool:
        return spec.outcome == "edss_change"

    def run(self, spec, evidence, request: ReportRequest) -> pd.DataFrame:
        thresholds = [t for t in request.thresholds if t != spec.options["default_threshold"]] or request.thresholds
        return threshold_sensitivity(spec, evidence, thresholds=thresholds, quantities=request.quantities,
                                     **request.kw)
