"""The EDSS reporting formats, one small module each; `FORMATS` maps a spec's format name to its `Format`."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from msc_bayes.outcomes.edss.formats import (
    baseline_followup,
    change,
    counts,
    means_only,
    patient,
)
from msc_bayes.outcomes.edss.formats.base import (
    HALF_STEP,
    BuildContext,
    CheckContext,
    Format,
)

#: Format name -> `Format`, in the spec's default priority order.
FORMATS: Mapping[str, Format] = MappingProxyType({
    m.FORMAT.name: m.FORMAT for m in (patient, change, baseline_followup, counts, means_only)
})
#: Formats whose likelihood uses the arm's within-arm SD of change sigma.
NEEDS_SIGMA = frozenset(f for f, x in FORMATS.items() if x.needs_sigma)

__all__ = ["FORMATS", "HALF_STEP", "NEEDS_SIGMA", "BuildContext", "CheckContext", "Format"]
