"""A study's label for a reader: first author and year, "Petrou 2020", from its citation.

One rule for every table, sentence and figure row that names a study: the author names before the
initials and the citation's year ("Mohyeddin Bonab M et al. 2012 Curr ..." -> "Mohyeddin Bonab 2012");
without a citation that reads that way, from the study key ("petrou2020" -> "Petrou 2020"); else the key.
"""

from __future__ import annotations

import re

import pandas as pd

#: a citation's author names (before the first initials) and its year
_AUTHORS = re.compile(r"^(?P<name>.+?)\s+[A-Z]{1,3}\b")
_YEAR = re.compile(r"\b(?:19|20)\d\d\b")
#: a study key's name and year ("petrou2020", "bonab_2012b")
_STUDY_KEY = re.compile(r"^(?P<name>[^\d]+?)_?(?P<year>(?:19|20)\d\d)(?P<rest>.*)$")


def study_label(study: str, citation: object = None) -> str:
    """First author and year of `study` (module docstring)."""
    if isinstance(citation, str) and (names := _AUTHORS.match(citation.strip())) and (year := _YEAR.search(citation)):
        return f"{names['name']} {year.group(0)}"
    if m := _STUDY_KEY.match(str(study)):
        return f"{m['name'].replace('_', ' ').title()} {m['year']}{m['rest']}"
    return str(study)


def study_labels(arms: pd.DataFrame) -> dict[str, str]:
    """study -> its label (`study_label` of its first arm's citation), the key appended where two studies
    would read alike ("Petrou 2020 (petrou2020b)")."""
    first = arms.drop_duplicates("study")
    cit = first["citation"] if "citation" in first else pd.Series([None] * len(first), index=first.index)
    labels = {s: study_label(s, c) for s, c in zip(first["study"], cit)}
    seen: dict[str, int] = {}
    for v in labels.values():
        seen[v] = seen.get(v, 0) + 1
    return {s: (f"{v} ({s})" if seen[v] > 1 else v) for s, v in labels.items()}
