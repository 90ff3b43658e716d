"""Declarative, validated model specs (TOML files in ``models/``).

A spec says *which* model to fit (the outcome), *which* covariates enter the
meta-regression, *which* priors to use, a few outcome-specific data-selection
options and the sampler settings. It is parsed with :mod:`tomllib` (never
``eval``) and validated completely before anything is fitted: every problem
found is collected and raised together as one :class:`~msc_bayes.errors.SpecError`.

Minimal spec::

    outcome = "edss_change"          # a key of msc_bayes.outcomes.OUTCOMES
    covariates = ["route", "courses"]  # [] = none
    [priors]                          # keys are the model's variable names
    tau = { dist = "HalfNormal", sigma = 0.5 }

Optional, with defaults (see :data:`msc_bayes.outcomes.OUTCOMES` for the per-outcome ones)::

    name = "EDSS change"             # default: file stem (spec_from_dict: the outcome)
    [covariate_options.courses]      # one table per covariate, all keys optional
    transform = "log"                # "identity" (default) | "log"
    centre = false                   # true: subtract the mean over the arms used; a number: subtract it (default false)
    scale = false                    # divide by the SD over the arms used (default false)
    reference = "IV"                 # categorical reference level (default: first sorted level)
    [options]                        # outcome-specific, see msc_bayes.outcomes.OUTCOMES[outcome].options
    [sampler]                        # draws=1000, tune=the outcome's, chains=4, target_accept=the outcome's, seed=20261121

Rules worth knowing:

* ``outcome`` and ``covariates`` are required; ``[priors]`` may be omitted or
  partial: every prior key of the outcome that is not given gets its default,
  so :attr:`Spec.priors` and :attr:`Spec.options` are always complete.
  :attr:`Spec.covariate_options` likewise has an entry for every covariate.
* Priors use **one parametrisation per distribution** (the one in
  :data:`DISTRIBUTIONS`); e.g. ``Normal`` takes ``mu``/``sigma`` but not the
  precision ``tau`` (the name clashes with the between-study SD ``tau``).
  Allowed and required parameter names, and the defaults of optional ones, are
  read from the PyMC class's ``dist`` signature with :mod:`inspect`; a
  parameter is required when PyMC gives it no numeric default. Exceptions:
  ``TruncatedNormal`` ``lower``/``upper`` are optional (omitted = unbounded on
  that side) and ``Exponential`` takes exactly one of ``lam`` (rate) or
  ``scale``. Parameter values are finite scalar numbers (stored as floats):
  a positive one (a scale, rate or shape) lies in :data:`PRIOR_SCALE_RANGE`, a
  location or bound within +-:data:`PRIOR_LOCATION_LIMIT`, and a bounded prior's
  width ``upper - lower`` is at least the smallest scale.
* A prior per covariate coefficient: ``beta`` is every coefficient's default; ``beta_<covariate>``
  sets every column of one covariate (``beta_courses``, ``beta_timepoint_months``) and
  ``beta_<covariate>_<level>`` one level's column (``beta_route_IT``; a level holding a character a
  TOML bare key cannot, such as ``+``, needs a quoted key: ``"beta_route_IT+IV" = {...}``). The most
  specific wins (:meth:`Spec.coefficient_prior`); covariate names hold underscores, so the longest
  covariate of ``covariates`` the key starts with is the one meant. A key naming no listed covariate is
  a SpecError at load (with a did-you-mean); a level the arms used lack, the reference level or a level
  of a numeric covariate is a SpecError when the design is built, naming the levels present.
* Prior keys with a restricted domain: ``tau``, ``tau_event``, ``sigma_tau``
  and ``sigma_edss`` need a distribution on [0, inf); ``rho`` needs support
  within [-1, 1] (e.g. Beta, Uniform(-1, 1), TruncatedNormal(lower=-1, upper=1)).
* ``[sampler]``: draws, tune and chains are integers >= 1 (nutpie panics on tune = 0), draws
  and tune at most 1,000,000, chains at most 64, draws x chains at most 4,000,000 (every draw is
  kept in memory; nutpie aborts the process when an allocation fails), seed an integer >= 0 and
  < 2**64 (nutpie's unsigned 64-bit integers; see :func:`check_sampler_settings`, which the CLI
  applies to its flags too);
  target_accept is strictly between 0 and 1; without it, the outcome's ``Outcome.target_accept``
  (0.9; edss_change 0.99); without tune, the outcome's ``Outcome.tune`` (1,000; edss_change 500).
* The spec file must be a regular UTF-8 file (a folder, FIFO, device or dangling link
  is refused without being read) holding valid TOML.
* Covariate names are checked against the evidence tables later, not here.
* ``Problem.row`` is the 1-based **line** of the TOML file when it can be
  located cheaply (syntax errors, and keys found by a simple line scan), else
  None; ``Problem.column`` is the dotted key, e.g. ``priors.tau.dist``.
"""

from msc_bayes.spec.core import Spec
from msc_bayes.spec.options import CovariateOption, OptionInfo
from msc_bayes.spec.priors import (
    DISTRIBUTIONS,
    PRIOR_LOCATION_LIMIT,
    PRIOR_SCALE_RANGE,
    Prior,
    PriorSlot,
    prior_data_name,
)
from msc_bayes.spec.reading import MAX_SPEC_BYTES, load_spec, spec_from_dict
from msc_bayes.spec.sampler import (
    SAMPLER_INT_MAX,
    SAMPLER_MAX_KEPT_DRAWS,
    SAMPLER_MAXIMUM,
    SamplerSettings,
    check_sampler_settings,
)

__all__ = [
    "DISTRIBUTIONS",
    "MAX_SPEC_BYTES",
    "PRIOR_LOCATION_LIMIT",
    "PRIOR_SCALE_RANGE",
    "SAMPLER_INT_MAX",
    "SAMPLER_MAXIMUM",
    "SAMPLER_MAX_KEPT_DRAWS",
    "CovariateOption",
    "OptionInfo",
    "Prior",
    "PriorSlot",
    "SamplerSettings",
    "Spec",
    "check_sampler_settings",
    "load_spec",
    "prior_data_name",
    "spec_from_dict",
]
