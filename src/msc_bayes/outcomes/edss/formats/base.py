"""What an EDSS reporting format is: when a row has it, its likelihood, its replicate, its observed estimate.

The model (:mod:`msc_bayes.outcomes.edss.model`) calls the hooks in a fixed order (see
`BUILD_ORDER` there): `before_theta` of every format, then the normal terms, then
`after_theta`; keeping that order keeps the compiled graph, and so the draws, the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from msc_bayes.evidence import EDSS_STEP

HALF_STEP = EDSS_STEP / 2


def has(row, *cols: str) -> bool:
    """Whether the row reports every one of `cols`."""
    return all(pd.notna(getattr(row, c)) for c in cols)


def has_spread(row) -> bool:
    """Whether the row reports a spread of its mean change (SD, SE or CI)."""
    return has(row, "change_sd") or has(row, "change_se") or has(row, "change_ci_lower")


def mean_replicate(y: float, n: float, theta: np.ndarray, sigma: np.ndarray | None,
                   ctx: CheckContext) -> list[Replicate]:
    """A reported mean change `y` of `n` patients beside replicates N(theta, sigma / sqrt(n)) (none without sigma)."""
    if sigma is None:
        return []
    return [("mean change", "mean change", y, ctx.rng.normal(theta, sigma / np.sqrt(n)))]


@dataclass
class BuildContext:
    """What the format hooks of one `build` share: the units, the within-arm SDs and the terms so far.

    ``terms`` lists (units, log likelihood terms), summed per unit into ``loglik`` at the end;
    ``normal`` lists (units, y, se), the terms y ~ N(theta[units], se) (they also enter the
    study effects' standardisation); ``sigma`` is the within-arm SD of change per unit
    (a tensor; 0 where no format needs it); ``has_sigma`` marks the units where it is modelled.
    """

    spec: object
    evidence: object
    model: object
    units: pd.DataFrame
    n: np.ndarray
    sigma: object
    has_sigma: np.ndarray
    #: per unit, the weight of a counts log likelihood (below 1 for an arm that repeats patients; see edss.shared)
    counts_weight: np.ndarray | None = None
    terms: list = field(default_factory=list)
    normal: list = field(default_factory=list)


@dataclass(frozen=True)
class CheckContext:
    """What the checks of one fit share: patients' changes (None without evidence), the random
    generator of the replicates, the interval's z and the spec's default count threshold."""

    patients: pd.DataFrame | None
    rng: np.random.Generator | None
    z: float
    default_threshold: float


#: One estimate: (value, lower, upper, what it is).
Estimate = tuple[float, float, float, str]
#: One predictive check: (check, statistic, observed, replicate draws).
Replicate = tuple[str, str, float, np.ndarray]


class Format:
    """One EDSS reporting format (subclasses override what applies to them)."""

    name: str = ""
    #: the methods sentence of a report
    text: str = ""
    #: its likelihood uses the arm's within-arm SD of change sigma (hierarchical, unless `gives_sigma`)
    needs_sigma: bool = False
    #: it models sigma itself (from the two visits' SDs and rho)
    gives_sigma: bool = False
    #: what an arm's observed estimate says when this is its only format and it gives no estimate
    no_estimate: str = ""
    #: the edss.csv columns it reads (a row's format rests on a secondary source when one of them is
    #: in the row's `secondary_fields`; patient-level data: when the patients' rows are graded secondary)
    columns: tuple[str, ...] = ()

    def available(self, row, patients_at: set) -> bool:
        raise NotImplementedError

    def before_theta(self, ctx: BuildContext, idx: np.ndarray) -> None:
        """Add what this format contributes before theta exists (parameters, normal terms)."""

    def after_theta(self, ctx: BuildContext, idx: np.ndarray, theta) -> None:
        """Add this format's likelihood terms that need theta."""

    def observed(self, r, ctx: CheckContext) -> Estimate | None:
        """The estimate this format gives of unit `r` (None: none; the next format is asked)."""
        return None

    def replicates(self, r, theta: np.ndarray, sigma: np.ndarray | None, ctx: CheckContext) -> list[Replicate]:
        """Observed numbers of unit `r` beside their posterior predictive replicates."""
        return []
