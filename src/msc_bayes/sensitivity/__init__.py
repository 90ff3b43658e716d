"""Sensitivity analyses and model comparison, as tidy tables with a figure each.

Every analysis is a sweep of fits (:mod:`msc_bayes.sweep`): it runs here, reusing compiled
models, or on a Dask cluster given ``scheduler="tcp://..."``. Each returns a
``pandas.DataFrame`` with one row per (scenario, quantity) and the columns

    scenario, family, <what the scenario changes>, quantity, mean, sd, median,
    eti95_lower, eti95_upper, prob_below_0, mcse_mean, ess_bulk, r_hat, method, notes, seconds

where the interval is the package's one interval (``msc_bayes.INTERVAL_PROB`` = 95%,
equal-tailed; the column names say so and ``df.attrs["interval"]`` spells it out),
``prob_below_0`` is the posterior probability that the quantity is below 0 (for EDSS change:
improvement, or for ``msc_effect`` benefit of MSC over control), ``method`` says how the row
was computed ("mcmc", "oracle" = exact normal-normal posterior, "reweight" = importance
reweighting of the base fit) and ``notes`` carries warnings (divergences, Pareto k, a
quantity informed by its prior only). The figures of these tables are :mod:`msc_bayes.viz`'s
``plot_*`` functions (each takes such a table first, keyword-only options after, and returns a
matplotlib ``Figure``, never shown).

Analyses (all keyword options after spec and evidence; sampler settings default to the spec's):

- :func:`prior_sensitivity`: refits under alternative priors for tau, mu, beta (and
  msc_effect), see :func:`default_prior_grid`; exact oracle for a plain effect-size table;
  optionally PSIS importance reweighting of the base fit (``method="reweight"``).
- :func:`power_scaling`: ArviZ's power-scaling sensitivity (``psense``) of the hyperpriors.
- :func:`rho_sensitivity`: the pre-post correlation held near fixed values vs its prior.
- :func:`threshold_sensitivity`: the EDSS threshold of improved/worsened category counts.
- :func:`leave_one_out`: leave-one-study-out (exact zero-weight refits, or PSIS importance
  reweighting of the base fit with exact refits where Pareto k is high) and each study's influence.
- :func:`evidence_scenarios`: secondary sources, overlapping cohorts, timepoints, subgroups (with
  ``method="reweight"`` a scenario leaving whole studies out is PSIS reweighting of the base fit
  where Pareto k allows, else its exact zero-weight refit).
- :func:`compare_models`: covariate sets by leave-one-study-out PSIS-LOO, with exact refits
  for studies whose Pareto k is too high.
- :func:`sensitivity_for_report`: the compact table (scenario x headline quantities) and the
  power-scaling table that the report shows (:func:`msc_bayes.viz.plot_sensitivity_grid` draws it),
  and the report's policy: which of these it runs (:mod:`.report_policy`).

One analysis per module on a shared base (:mod:`.base`: table layout, PSIS weights and weighted
summaries, the headline quantities and the :class:`~.base.Analysis` protocol of a report family):
:mod:`.prior`, :mod:`.power_scaling`, :mod:`.rho`, :mod:`.threshold`, :mod:`.leave_one_out`,
:mod:`.evidence_scenarios`, :mod:`.compare`, :mod:`.report_policy`.

Cost: a refit of an already compiled model only samples (seconds); a change of prior
*family*, covariates, options (e.g. the threshold) or data compiles a new model (tens of
seconds). Subgroup scenarios that drop whole studies are run as exact zero-weight refits of
the base model (``exclude_studies``), which needs no compile. Cheaper still, and exact in
expectation: PSIS importance reweighting of the base fit (``method="reweight"`` of the prior,
leave-one-out and evidence analyses), trusted where Pareto k <= :data:`K_THRESHOLD` and replaced by
the exact refit elsewhere, so a row is never an untrusted approximation. Measured on the bundled
EDSS model (2 cores, 4 x 1000 draws, target_accept 0.99) a refit costs all of its time in nutpie's
sampling (the fit's own post-processing is < 1%), and nutpie already runs the 4 chains on both
cores: refits are run one after the other.
"""

from msc_bayes.sensitivity.base import (
    K_THRESHOLD,
    Analysis,
    ReportRequest,
    headline_quantities,
)
from msc_bayes.sensitivity.compare import compare_models
from msc_bayes.sensitivity.evidence_scenarios import (
    EVIDENCE_SCENARIOS,
    as_exclusion,
    evidence_scenarios,
)
from msc_bayes.sensitivity.leave_one_out import leave_one_out
from msc_bayes.sensitivity.power_scaling import power_scaling
from msc_bayes.sensitivity.prior import default_prior_grid, prior_sensitivity
from msc_bayes.sensitivity.report_policy import (
    FAMILIES,
    REPORT_FAMILIES,
    ReportSensitivity,
    report_table,
    sensitivity_for_report,
)
from msc_bayes.sensitivity.rho import rho_sensitivity
from msc_bayes.sensitivity.threshold import threshold_sensitivity

__all__ = [
    "EVIDENCE_SCENARIOS",
    "FAMILIES",
    "K_THRESHOLD",
    "REPORT_FAMILIES",
    "Analysis",
    "ReportRequest",
    "ReportSensitivity",
    "as_exclusion",
    "compare_models",
    "default_prior_grid",
    "evidence_scenarios",
    "headline_quantities",
    "leave_one_out",
    "power_scaling",
    "prior_sensitivity",
    "report_table",
    "rho_sensitivity",
    "sensitivity_for_report",
    "threshold_sensitivity",
]
