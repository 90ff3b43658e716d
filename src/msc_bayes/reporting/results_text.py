"""The results paragraph: the outcome's declared statements (:class:`msc_bayes.outcomes.Statement`), in order."""

from __future__ import annotations

import xarray as xr

from msc_bayes import outcomes
from msc_bayes.numbers import stated
from msc_bayes.outcomes.base import Statement
from msc_bayes.reporting.numbers import coord_cells, estimate
from msc_bayes.results import group, interval_text, reference_text, stack_draws


def results_paragraph(fit) -> str:
    """Key numbers, each with its interval, from the posterior and derived draws."""
    outcome = outcomes.get(fit.spec.outcome)
    found = {"posterior": group(fit, "posterior"), "derived": group(fit, "derived")}
    found = {name: xr.Dataset() if ds is None else ds for name, ds in found.items()}
    ref = reference_text(fit)
    at_ref = f"at reference covariates ({ref})" if ref else "(no covariates)"
    at_ref += "".join(words for name, words in outcome.reference_suffixes if name in found["posterior"])
    body = [sentence for s in outcome.statements if (sentence := _sentence(s, found, at_ref)) is not None]
    return " ".join([f"Posterior medians with {interval_text()}s.", *body])


def _sentence(s: Statement, found: dict[str, xr.Dataset], at_ref: str) -> str | None:
    """The statement's sentence, or None when the fit lacks its variable (or, numeric_only, any numeric cell)."""
    ds = found[s.group]
    if s.variable not in ds:
        return None
    if s.listing:
        cells = coord_cells(ds, s.variable)
        if s.numeric_only:
            cells = [(c, x) for c, x in cells if "[" not in c]
            if not cells:
                return None
        value = "; ".join(f"{c} {estimate(x, s.format)}" for c, x in cells)
    else:
        value = estimate(stack_draws(ds[s.variable]), s.format)
    probabilities = ""
    if s.probabilities and s.probabilities in found["derived"]:
        probabilities = "; " + "; ".join(
            stated(s.probability_words(c), x.mean())
            for c, x in coord_cells(found["derived"], s.probabilities))
    return s.text.format(value=value, at_ref=at_ref, probabilities=probabilities)
