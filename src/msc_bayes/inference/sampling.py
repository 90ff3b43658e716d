"""One nutpie run of a compiled model: settings checked first, the model's data set, any sampler
failure one :class:`~msc_bayes.errors.SamplingError`, and the draws made into a self-describing
DataTree (log likelihood in its own group, derived quantities, provenance attrs)."""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from msc_bayes import results
from msc_bayes.errors import SamplingError, SpecError
from msc_bayes.inference.result import Fit, versions


def sampler_settings(spec, *, draws, tune, chains, seed, target_accept) -> dict:
    """The settings of a fit (None: the spec's): each given value checked alone, then all together
    (draws x chains), by the rules of a spec's ``[sampler]`` table; a problem is a SpecError."""
    from msc_bayes.spec import check_sampler_settings

    given = {"draws": draws, "tune": tune, "chains": chains, "seed": seed, "target_accept": target_accept}
    problems = check_sampler_settings(**given, source=f"fit() of spec '{spec.name}'")  # None: not given
    settings = {k: getattr(spec.sampler, k) if v is None else v for k, v in given.items()}
    if not problems:  # each given value is fine: now the settings together (draws x chains)
        problems = check_sampler_settings(**settings, source=f"fit() of spec '{spec.name}'")
    if problems:
        raise SpecError(problems)
    return settings


def data_updates(spec, model, prepared, exclude_studies) -> dict:
    """The model's data for this fit: the spec's prior values and the unit weights (0: a left-out study)."""
    from msc_bayes import outcomes
    from msc_bayes.spec import prior_data_name

    data_names = {d.name for d in model.data_vars}
    updates = {prior_data_name(k, p): v for k, prior in spec.priors.items() for p, v in prior.params.items()
               if prior_data_name(k, p) in data_names}
    if "covariate" in model.coords:  # each coefficient's own prior: vector data (outcomes.covariates.coefficients)
        from msc_bayes.outcomes.covariates import coefficient_prior_data

        updates.update({k: v for k, v in coefficient_prior_data(spec, model.coords["covariate"]).items()
                        if k in data_names})
    unknown = set(exclude_studies) - set(prepared.units["study"])
    if unknown:
        raise ValueError(f"exclude_studies: {sorted(unknown)} not among the modelled studies")
    updates["unit_weight"] = (~prepared.units["study"].isin(list(exclude_studies))).to_numpy(dtype=float)
    option_data = outcomes.get(spec.outcome).option_data
    if option_data is not None:
        updates.update({k: v for k, v in option_data(spec).items() if k in data_names})
    return updates


def with_data(model_c, model, updates: dict):
    """The sampler of `model_c` with `updates` set, and the same values set in the PyMC model.

    nutpie's initial point (support point + jitter) is computed from the PyMC model's own
    pm.Data, while with_data only reaches the sampler's logp: set both, so the draws depend
    only on (spec, evidence, settings), never on which spec compiled the cached model.
    """
    for name, value in updates.items():
        model[name].set_value(np.asarray(value, dtype=model[name].dtype))
    return model_c.with_data(**updates)


def sample(sampler, spec, settings: dict, exclude_studies, progress: bool) -> xr.DataTree:
    """nutpie's draws; any failure of the sampler is one :class:`SamplingError`.

    nutpie's blocking ``sample`` answers Ctrl-C with the draws made so far, as if sampling had
    finished; waiting here instead lets KeyboardInterrupt through (the sampler is cancelled).
    When a :class:`msc_bayes.progress.Progress` is active, its meter gets the draws (nutpie's own
    bar, `progress`, is then off).
    """
    import nutpie

    from msc_bayes import progress as progress_report

    running, meter = None, progress_report.meter()
    callback = None if meter is None else (lambda chains: meter.update(sum(c.finished_draws for c in chains),
                                                                        sum(c.total_draws for c in chains)))
    try:
        running = nutpie.sample(sampler, draws=int(settings["draws"]), tune=int(settings["tune"]),
                                chains=int(settings["chains"]), seed=int(settings["seed"]),
                                target_accept=float(settings["target_accept"]),
                                progress_bar=progress and meter is None, progress_callback=callback,
                                progress_rate=progress_report.PROGRESS_RATE_MS, save_warmup=False, blocking=False)
        return running.wait()
    except BaseException as exc:
        if running is not None:
            _cancel(running)
        if not is_sampler_failure(exc):
            raise
        shown = ", ".join(f"{k}={v}" for k, v in settings.items())
        if exclude_studies:
            shown += f", exclude_studies={sorted(exclude_studies)}"
        raise SamplingError(f"sampling spec '{spec.name}' ({shown}) failed: {_one_line(exc)}") from exc
    finally:
        if meter is not None:
            meter.close()


def is_sampler_failure(exc: BaseException) -> bool:
    """Anything nutpie raises, including a Rust panic (pyo3's PanicException is a BaseException),
    but not KeyboardInterrupt or SystemExit."""
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"


def _cancel(running) -> None:
    """Stop the sampler's threads. A sampler that panicked panics again when cancelled ("Poisoned
    sampler state mutex"): the first failure is the one to report, so that one is not raised."""
    try:
        running.cancel()
    except BaseException as exc:
        if not is_sampler_failure(exc):
            raise


def _one_line(exc: BaseException) -> str:
    """'Type: message' on one line, without the Rust stack backtrace nutpie's errors carry."""
    text = str(exc).split("Stack backtrace:")[0]
    joined = ""
    for line in filter(None, (line.strip() for line in text.splitlines())):
        joined += (" " if joined.endswith(":") else "; ") + line if joined else line
    return f"{type(exc).__name__}: {joined}" if joined else type(exc).__name__


def fitted(tree: xr.DataTree, spec, evidence, prepared, settings: dict, exclude_studies, elapsed: float) -> Fit:
    """The `Fit` of nutpie's `tree`: log likelihood in its own group, derived quantities, provenance attrs."""
    from msc_bayes import outcomes

    posterior = tree["posterior"].to_dataset()
    if "loglik" in posterior:  # the per-arm log likelihood belongs in its own group (for LOO)
        tree["log_likelihood"] = xr.DataTree(posterior[["loglik"]].rename({"loglik": spec.outcome}))
        posterior = posterior.drop_vars("loglik")
        tree["posterior"] = xr.DataTree(posterior)
    seed = settings["seed"]
    seeded = spec if spec.sampler.seed == seed else spec.replace(sampler={"seed": int(seed)})
    tree["derived"] = xr.DataTree(outcomes.get(spec.outcome).derive(posterior, prepared, seeded))
    tree.attrs.update({
        "spec": json.dumps(spec.to_dict()),
        "priors": json.dumps({k: str(v) for k, v in spec.priors.items()}),
        "seed": int(seed), "draws": int(settings["draws"]), "tune": int(settings["tune"]),
        "chains": int(settings["chains"]), "target_accept": float(settings["target_accept"]),
        "data_hash": evidence.data_hash, "data_path": str(evidence.path),
        "excluded_studies": json.dumps(sorted(exclude_studies)),
        "versions": json.dumps(versions()), "sampling_seconds": float(elapsed),
        "interval": results.interval_text(), "notes": json.dumps(list(prepared.notes)),
        "design": json.dumps(prepared.design.to_dict()),
        "units": json.dumps(list(prepared.units["label"])),
    })
    return Fit(tree, spec, prepared)
