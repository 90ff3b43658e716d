"""fit(): a refit of a cached compiled model equals a fit from a fresh compile; model graphs compile fast."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from msc_bayes import fitting
from msc_bayes.evidence import load_evidence
from msc_bayes.spec import Prior, spec_from_dict

REPO = Path(__file__).resolve().parents[1]
SEED = 20261121
KW = {"draws": 200, "tune": 200, "chains": 2, "seed": SEED}


@pytest.mark.slow
def test_draws_do_not_depend_on_which_spec_compiled_the_model(tmp_path):
    (tmp_path / "edss.csv").write_text(
        "study,arm,timepoint_months,n,change_mean,change_se\n"
        "s1,a,12,20,-0.3,0.15\ns2,a,12,30,0.1,0.12\ns3,a,6,15,-0.5,0.2\ns4,a,12,40,-0.1,0.1\n")
    evidence = load_evidence(tmp_path)
    base = spec_from_dict({"outcome": "edss_change", "covariates": []})
    wide = base.replace(priors={"tau": Prior("HalfNormal", {"sigma": 2.0})})

    fitting._COMPILED.clear()
    fresh = fitting.fit(wide, evidence, **KW).posterior["tau"].values
    fitting._COMPILED.clear()
    fitting.fit(base, evidence, **KW)  # compiles the model with base's prior values
    refit = fitting.fit(wide, evidence, **KW).posterior["tau"].values
    assert np.array_equal(fresh, refit)


#: Ops numba compiles slowly on an empty cache (seconds each, measured with numba's compile
#: events): PyTensor's Dot and the BLAS ops its gradient becomes (~30 s), LogSumExp with its
#: max reduction (~15 s). The models' tiny products and sums need none of them.
SLOW_TO_COMPILE = ("Dot", "Gemv", "Gemm", "Dot22", "LogSumExp")


@pytest.mark.parametrize("spec_file", ["edss_change.toml", "adverse_events.toml", "mri_activity.toml"])
def test_bundled_models_avoid_ops_that_compile_slowly(spec_file):
    import pytensor
    from pytensor.graph.traversal import ancestors

    from msc_bayes.spec import load_spec

    model, _ = fitting.build(load_spec(REPO / "models" / spec_file), load_evidence(REPO / "data"))
    logp = model.logp()
    outputs = [logp, *pytensor.grad(logp, model.value_vars), *model.unobserved_value_vars]
    ops = {type(v.owner.op).__name__ for v in ancestors(outputs) if v.owner is not None}
    assert ops.isdisjoint(SLOW_TO_COMPILE), sorted(ops & set(SLOW_TO_COMPILE))
