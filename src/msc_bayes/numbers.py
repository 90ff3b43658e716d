"""How numbers are written for a reader: a true minus sign and never "−0.00", risks in percent,
probabilities that never read as certain, and an estimate with its interval.

The one home of these rules: the summary of findings (`findings`), the figures (`viz`) and the report
(`report`) all write numbers through here, so the same value reads the same everywhere. Pure functions of
numbers; nothing here imports the rest of the package.

The rules:
- a number: 2 decimals; 2 significant digits when it is below 0.1 in size (an interval: when every end is);
- a table cell (`num`): 3 decimals, 3 significant digits below 0.01;
- a risk in percent: 2 significant digits below 1% ("0.42%", "0.50%"), else `digits` decimals ("27.4%");
  exactly 0 is "0%";
- a probability: 2 decimals, 3 in the tails (below 0.01 or above 0.99), and "< 0.001" / "> 0.999" beyond,
  so a probability never reads as 0 or 1;
- an estimate: "median (95% ETI lower to upper)"; a log odds ratio followed by its odds ratio.
"""

from __future__ import annotations

import math
from collections.abc import Callable

#: the true minus sign (U+2212)
MINUS = "\u2212"
#: below this size a number (or every end of an interval) is written to 2 significant digits
SMALL = 0.1
#: probabilities beyond these are written as bounds ("> 0.999"): Monte Carlo draws cannot tell them from 0 or 1
P_LOW, P_HIGH = 0.001, 0.999


def true_minus(text: str) -> str:
    """`text` with a true minus sign for every hyphen-minus."""
    return text.replace("-", MINUS)


def fmt(x: float, digits: int = 2) -> str:
    """`x` to `digits` decimals with a true minus sign (no "−0.00"); NA when not finite."""
    if not math.isfinite(x):
        return "NA"
    text = f"{x:.{digits}f}"
    if float(text) == 0:
        text = f"{abs(x):.{digits}f}"
    return true_minus(text)


def significant(x: float, digits: int = 2) -> str:
    """`x` to at most `digits` significant digits with a true minus sign ("−0.0044", "0.5", "2")."""
    return true_minus(f"{float(x):.{digits}g}")


def sig3(x: float) -> str:
    """At most 3 significant digits (a prior's parameter: −0.357, 0.5, 2)."""
    return significant(x, 3)


def num(x: float) -> str:
    """A table cell: 3 decimals, or 3 significant digits when smaller than 0.01."""
    if math.isfinite(x) and x != 0 and abs(x) < 0.01:
        return significant(x, 3)
    return fmt(x, 3)


def signed_g(x) -> str:
    """A coordinate value as :g with a true minus sign."""
    return true_minus(f"{float(x):g}")


def risk(p: float, digits: int = 1) -> str:
    """A risk in percent: 2 significant digits below 1%, else `digits` decimals; exactly 0 is "0%"."""
    pct = 100 * p
    if pct == 0:
        return "0%"
    return f"{pct:#.2g}%" if pct < 0.995 else f"{pct:.{digits}f}%"  # 0.996% is "1.0%", not "1.0e+00%" or "1%"


def prob(p: float) -> str:
    """A probability: 2 decimals, 3 in the tails, "< 0.001" / "> 0.999" beyond them."""
    if p > P_HIGH:
        return f"> {P_HIGH:g}"
    if p < P_LOW:
        return f"< {P_LOW:g}"
    return f"{p:.3f}" if p < 0.01 or p > 0.99 else f"{p:.2f}"


def stated(head: str, p: float) -> str:
    """A probability after its name: 'P(risk > 10%) = 0.95', or 'P(risk > 10%) > 0.999' beyond the tails
    (never '= > 0.999')."""
    text = prob(p)
    return f"{head} {text}" if text[0] in "<>" else f"{head} = {text}"


def p_equals(p: float, what: str = "") -> str:
    """'P = 0.95', 'P(what) = 0.95', or 'P > 0.999' (`stated`)."""
    return stated(f"P({what})" if what else "P", p)


def plural(n: int, noun: str, many: str | None = None) -> str:
    """`n` with its noun, singular for exactly 1: "1 divergent transition", "0 divergent transitions"."""
    return f"{n} {noun if n == 1 else (many or noun + 's')}"


def _writer(kind: str, values, digits: int = 1) -> Callable[[float], str]:
    """How each of `values` (a number, or an interval's median and ends) is written on scale `kind`."""
    if kind == "risk":
        return lambda v: risk(v, digits)
    sizes = [abs(v) for v in values if math.isfinite(v)]
    if kind in ("sig", "rate") or (kind == "num" and sizes and 0 < max(sizes) < SMALL):
        return significant
    return fmt


def number(x: float, kind: str = "num", digits: int = 1) -> str:
    """One number on scale `kind` ("risk": in percent to `digits` decimals; "num": 2 decimals, 2 significant
    digits below 0.1; others 2 decimals): the interval rule applied to one value."""
    return _writer(kind, [x], digits)(x)


def span(lower: float, upper: float, kind: str = "num", *, digits: int = 1) -> str:
    """'lower to upper', both ends under one rule."""
    f = _writer(kind, [lower, upper], digits)
    return f"{f(lower)} to {f(upper)}"


def interval(med: float, lo: float, hi: float, kind: str = "num", *, label: str = "") -> str:
    """A median with its interval ends: 2 decimals (2 significant digits when every one is below 0.1), risks in
    %, a log odds ratio followed by its odds ratio; `label` (e.g. "95% ETI") opens the bracket:
    "−0.31 (95% ETI −0.62 to 0.01)"."""
    f = _writer(kind, [med, lo, hi])
    head = f"{label} " if label else ""
    text = f"{f(med)} ({head}{f(lo)} to {f(hi)})"
    if kind == "log_odds_ratio":
        q = [math.exp(v) for v in (med, lo, hi)]
        text += f", i.e. odds ratio {fmt(q[0])} ({head}{fmt(q[1])} to {fmt(q[2])})"
    return text
