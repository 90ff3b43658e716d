"""Rank plots of the hyperparameters: arviz-plots' fractional-rank Δ-ECDF per chain with its multi-chain test."""

from __future__ import annotations

import arviz_plots as ap
from arviz_base import from_dict
from arviz_base.labels import BaseLabeller
from matplotlib import pyplot
from matplotlib.figure import Figure

from msc_bayes import INTERVAL_PROB
from msc_bayes.viz.common import hyperparameters, plain
from msc_bayes.viz.palette import CHAINS


class _PlainLabeller(BaseLabeller):
    """Panel titles as matplotlib-safe text (a $ in a name is literal)."""

    def var_name_to_str(self, var_name):
        return None if var_name is None else plain(var_name)


def rank_plot(fit, *, max_panels: int = 12) -> Figure:
    """Fractional-rank Δ-ECDF of each hyperparameter cell per chain (near 0 when the chains mix).

    One panel per cell, the first `max_panels` in the spec's order; each panel carries the p-value of
    arviz-stats' multi-chain uniformity test at the package's interval probability, and the draws
    it flags as where the chains disagree (black markers). A single chain gets the ECDF's band at
    that probability instead (arviz-plots' ``envelope`` method, its fixed seed).
    """
    values = {label: x for label, x, _ in hyperparameters(fit)[:max_panels]}
    cols = min(4, max(1, len(values)))
    rows = max(1, -(-len(values) // 4))
    one_chain = next(iter(values.values())).shape[0] == 1  # the multi-chain test needs two chains
    # Flagged draws are drawn in arviz-plots' text colour: its 1.3.2 validation takes no colour for them.
    pc = ap.plot_rank(from_dict({"posterior": values}), method="envelope" if one_chain else "mtc_c",
                      envelope_prob=INTERVAL_PROB, backend="matplotlib", labeller=_PlainLabeller(), col_wrap=4,
                      color=list(CHAINS), figure_kwargs={"figsize": (2.75 * cols, 2.3 * rows)})
    fig = pc.viz["figure"].item()
    pyplot.close(fig)  # arviz-plots draws through pyplot: detach the figure from pyplot's state (never shown)
    fig.suptitle("Fractional-rank Δ-ECDF per chain (near 0 = chains agree)", fontsize=10)
    fig.tight_layout()
    return fig
