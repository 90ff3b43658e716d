"""What an outcome's ``[options]`` keys (`OptionInfo`) and a covariate's options
(`CovariateOption`) may be; the outcome declarations themselves live in :mod:`msc_bayes.outcomes`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from msc_bayes.outcomes import Outcome


@dataclass(frozen=True)
class OptionInfo:
    """An allowed ``[options]`` key of an outcome.

    kind: "choice" (one string of ``choices``), "subset" (non-empty list of unique
    strings from ``choices``, order kept), "strings" (list of unique non-empty
    strings), "bool", "positive_float" (default None allowed: not given), "numbers" (list of
    distinct finite numbers), "text" (a non-empty string).
    """

    kind: str
    default: object
    description: str
    choices: tuple[str, ...] = ()


_TRANSFORMS = ("identity", "log")


def _centre(value) -> bool | float:
    return bool(value) if isinstance(value, (bool, np.bool_)) else float(value)


@dataclass(frozen=True)
class CovariateOption:
    """How one covariate enters the regression.

    transform: "identity" | "log" (numeric covariates, applied before centring);
    centre: false, true (subtract the mean over the arms used) or a number (subtract that
    value, on the transformed scale: e.g. 12 for follow-up in months, so the intercept is
    the 12-month value); scale: divide by the SD over the arms used;
    reference: reference level of a categorical covariate (None = first level in sorted order).
    """

    transform: str = "identity"
    centre: bool | float = False
    scale: bool = False
    reference: str | int | None = None

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"transform": self.transform, "centre": self.centre, "scale": self.scale}
        if self.reference is not None:
            d["reference"] = self.reference
        return d


_COVOPT_KEYS = ("transform", "centre", "scale", "reference")


def _outcome_infos() -> Mapping[str, Outcome]:
    """Outcome name -> its declaration (imported when first asked: msc_bayes.outcomes imports msc_bayes.spec)."""
    from msc_bayes.outcomes import OUTCOMES

    return OUTCOMES
