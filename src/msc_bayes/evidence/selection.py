"""Which rows an analysis uses: each patient counted once, one timepoint per arm.

Both rules are documented defaults with the alternatives open to sensitivity analyses:
- overlapping cohorts (arms.csv `overlap_group`): among the arms of a group that have
  data for this outcome, keep those with the lowest `overlap_rank`;
- several timepoints of one arm are not independent evidence: keep the `last` (default),
  the `first`, or `all` (each timepoint its own unit: a sensitivity analysis only).
"""

from __future__ import annotations

import pandas as pd


def count_once(arms: pd.DataFrame, has_data: pd.Series) -> tuple[pd.DataFrame, list[str]]:
    """Arms with data, minus overlapping arms outranked by another arm with data."""
    arms = arms[has_data.to_numpy()]
    grouped = arms["overlap_group"].notna()
    best = arms[grouped].groupby("overlap_group")["overlap_rank"].transform("min")
    drop = grouped & (arms["overlap_rank"] > best.reindex(arms.index))
    notes = [f"{s}:{a} left out: overlaps a preferred cohort in {g}"
             for s, a, g in arms.loc[drop, ["study", "arm", "overlap_group"]].itertuples(index=False)]
    return arms[~drop], notes


def pick_timepoints(rows: pd.DataFrame, how: str) -> pd.DataFrame:
    """Rows at the chosen timepoint of each study arm (`rows` needs study, arm, timepoint_months)."""
    if how == "all" or rows.empty:
        return rows
    pick = rows.groupby(["study", "arm"])["timepoint_months"].transform("max" if how == "last" else "min")
    return rows[rows["timepoint_months"] == pick]
