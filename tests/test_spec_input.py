"""Bad spec input ends in one SpecError (issue 12): degenerate prior parameters, sampler
settings nutpie cannot take, and spec paths that are not a readable UTF-8 TOML file."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from msc_bayes.errors import SpecError
from msc_bayes.spec import (
    DISTRIBUTIONS,
    PRIOR_LOCATION_LIMIT,
    PRIOR_SCALE_RANGE,
    SAMPLER_INT_MAX,
    Prior,
    SamplerSettings,
    check_sampler_settings,
    load_spec,
    spec_from_dict,
)

MINIMAL = {"outcome": "edss_change", "covariates": []}
LOW, HIGH = PRIOR_SCALE_RANGE

#: A valid prior of every allowed distribution (PARAMS comes from DISTRIBUTIONS, so one missing
#: here is a KeyError); a parameter under test is set on top of it.
VALID_BODIES = {
    "Normal": {"mu": 0, "sigma": 1},
    "HalfNormal": {"sigma": 1},
    "HalfCauchy": {"beta": 1},
    "HalfStudentT": {"nu": 3, "sigma": 1},
    "StudentT": {"nu": 3, "mu": 0, "sigma": 1},
    "Cauchy": {"alpha": 0, "beta": 1},
    "Laplace": {"mu": 0, "b": 1},
    "LogNormal": {"mu": 0, "sigma": 1},
    "Exponential": {"lam": 1},
    "Gamma": {"alpha": 2, "beta": 2},
    "InverseGamma": {"alpha": 2, "beta": 2},
    "Beta": {"alpha": 2, "beta": 2},
    "Uniform": {"lower": -1, "upper": 1},
    "TruncatedNormal": {"mu": 0, "sigma": 1, "lower": -1, "upper": 1},
}
PARAMS = [(d, p) for d, info in DISTRIBUTIONS.items() for p in info]
POSITIVE = [(d, p) for d, p in PARAMS if DISTRIBUTIONS[d][p].kind == "positive"]
REAL = [(d, p) for d, p in PARAMS if DISTRIBUTIONS[d][p].kind == "real"]


def prior_with(dist: str, param: str, value) -> dict:
    body = {"scale": 1} if (dist, param) == ("Exponential", "scale") else dict(VALID_BODIES[dist])
    return {"dist": dist, **body, param: value}


def load_prior(dist: str, param: str, value):
    """The spec's prior `mu` (a key with no domain restriction) with `param` set to `value`."""
    return spec_from_dict({**MINIMAL, "priors": {"mu": prior_with(dist, param, value)}}).priors["mu"]


def columns(excinfo) -> list[str | None]:
    return [p.column for p in excinfo.value.problems]


@pytest.mark.parametrize("dist, param", POSITIVE)
def test_positive_parameter_outside_the_scale_range_is_a_spec_error(dist, param):
    """A scale, rate or shape must be finite and within PRIOR_SCALE_RANGE: 1e-300 broke nutpie."""
    for bad in (1e-300, LOW / 10, HIGH * 10, 1e300, float("inf"), float("nan"), 0, -1):
        with pytest.raises(SpecError, match=r"> 0, between 1e-6 and 1e6") as ei:
            load_prior(dist, param, bad)
        assert columns(ei) == [f"priors.mu.{param}"], bad
    assert load_prior(dist, param, LOW).params[param] == LOW
    assert load_prior(dist, param, HIGH).params[param] == HIGH


@pytest.mark.parametrize("dist, param", REAL)
def test_location_or_bound_beyond_the_limit_is_a_spec_error(dist, param):
    sign = -1 if param == "lower" else 1  # keep lower < upper
    for bad in (sign * 1e300, sign * PRIOR_LOCATION_LIMIT * 10, sign * float("inf"), float("nan")):
        with pytest.raises(SpecError, match=r"between -1e6 and 1e6") as ei:
            load_prior(dist, param, bad)
        assert columns(ei) == [f"priors.mu.{param}"], bad
    assert load_prior(dist, param, sign * PRIOR_LOCATION_LIMIT).params[param] == sign * PRIOR_LOCATION_LIMIT


@pytest.mark.parametrize("dist", ["Uniform", "TruncatedNormal"])
def test_bounded_prior_narrower_than_the_smallest_scale_is_a_spec_error(dist):
    body = {**prior_with(dist, "lower", 0.0), "upper": 1e-300}
    with pytest.raises(SpecError, match=r"upper - lower at least 1e-6") as ei:
        spec_from_dict({**MINIMAL, "priors": {"mu": body}})
    assert columns(ei) == ["priors.mu.upper"]
    narrowest = spec_from_dict({**MINIMAL, "priors": {"mu": {**body, "upper": LOW}}}).priors["mu"]
    assert narrowest.support == (0.0, LOW)


def test_prior_constructor_applies_the_same_bounds():
    with pytest.raises(SpecError, match="between 1e-6 and 1e6"):
        Prior("HalfNormal", {"sigma": 1e-300})
    with pytest.raises(SpecError, match="between -1e6 and 1e6"):
        Prior("Normal", {"mu": 1e300, "sigma": 1})


def test_toml_inf_nan_and_tiny_scales_name_their_line(tmp_path):
    text = """\
outcome = "edss_change"
covariates = []
[priors]
tau = { dist = "HalfNormal", sigma = 1e-300 }
mu = { dist = "Normal", mu = nan, sigma = inf }
beta = { dist = "Normal", mu = 0, sigma = 1e300 }
"""
    path = tmp_path / "spec.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as ei:
        load_spec(path)
    found = {(p.column, p.row) for p in ei.value.problems}
    assert found == {("priors.tau.sigma", 4), ("priors.mu.mu", 5), ("priors.mu.sigma", 5), ("priors.beta.sigma", 6)}
    assert all(p.file == str(path) for p in ei.value.problems)


# --------------------------------------------------------------------------------------
# Sampler settings
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings, column, match",
    [
        ({"tune": 0}, "sampler.tune", "integer >= 1"),  # nutpie panics (Rust assertion) on tune = 0
        ({"seed": 2**64}, "sampler.seed", r"< 2\*\*64"),  # nutpie: OverflowError
        ({"draws": 2**64}, "sampler.draws", "<= 1,000,000"),
        ({"chains": 2**64}, "sampler.chains", "<= 64"),
        ({"tune": 10**30}, "sampler.tune", "<= 1,000,000"),
        ({"chains": 100_000}, "sampler.chains", "<= 64"),  # nutpie aborted the process (allocation)
        ({"draws": 10**12}, "sampler.draws", "<= 1,000,000"),
        ({"draws": 1_000_000, "chains": 8}, "sampler.draws", "4,000,000 draws in all chains together"),
    ],
)
def test_sampler_settings_nutpie_cannot_take_are_spec_errors(settings, column, match):
    with pytest.raises(SpecError, match=match) as ei:
        spec_from_dict({**MINIMAL, "sampler": settings})
    assert columns(ei) == [column]


def test_check_sampler_settings_names_source_and_flag():
    problems = check_sampler_settings(draws=0, tune=5, chains=2, seed=-1, source="command line", prefix="--")
    found = [(p.file, p.column, p.value) for p in problems]
    assert found == [("command line", "--draws", 0), ("command line", "--seed", -1)]
    assert "integer >= 1" in problems[0].expected and "integer >= 0" in problems[1].expected
    assert check_sampler_settings(draws=None, tune=None, chains=None, seed=None) == []  # not given: not checked
    assert check_sampler_settings(draws=10, tune=1, chains=1, seed=2**64 - 1, target_accept=0.8) == []
    (p,) = check_sampler_settings(target_accept=1.0)
    assert (p.file, p.column) == ("<sampler>", "target_accept")


def test_sampler_settings_validate_on_construction():
    with pytest.raises(SpecError, match="tune"):
        SamplerSettings(tune=0)
    with pytest.raises(SpecError, match="seed"):
        SamplerSettings(seed=2**64)


def test_spec_seed_out_of_range_is_a_spec_error_at_load(tmp_path):
    path = tmp_path / "spec.toml"
    path.write_text('outcome = "edss_change"\ncovariates = []\n[sampler]\nseed = 18446744073709551616\n',
                    encoding="utf-8")
    with pytest.raises(SpecError, match=r"< 2\*\*64") as ei:
        load_spec(path)
    (p,) = ei.value.problems
    assert (p.column, p.row) == ("sampler.seed", 4)
    path.write_text(path.read_text().replace("551616", "551615") + "tune = 1\n", encoding="utf-8")
    assert (load_spec(path).sampler.seed, load_spec(path).sampler.tune) == (SAMPLER_INT_MAX, 1)  # nutpie's extremes


@pytest.mark.slow
def test_sampler_bounds_are_exactly_what_nutpie_takes():
    """The limits are nutpie's own: the largest seed and tune = 1 sample; one more or tune = 0 fail."""
    import nutpie
    import pymc as pm

    with pm.Model() as model:
        pm.Normal("x", 0.0, 1.0)
    compiled = nutpie.compile_pymc_model(model)
    tree = nutpie.sample(compiled, draws=3, tune=1, chains=1, seed=SAMPLER_INT_MAX, progress_bar=False)
    assert tree.posterior.sizes["draw"] == 3
    with pytest.raises(OverflowError):
        nutpie.sample(compiled, draws=3, tune=1, chains=1, seed=SAMPLER_INT_MAX + 1, progress_bar=False)
    with pytest.raises(OverflowError):
        nutpie.sample(compiled, draws=3, tune=1, chains=1, seed=-1, progress_bar=False)


# --------------------------------------------------------------------------------------
# The spec file itself
# --------------------------------------------------------------------------------------

VALID_TOML = 'outcome = "edss_change"\ncovariates = []\n'


def load_problem(path: Path):
    with pytest.raises(SpecError) as ei:
        load_spec(path)
    (p,) = ei.value.problems
    assert p.file == str(path)
    return p


def test_a_folder_is_named_as_a_folder(tmp_path):
    folder = tmp_path / "spec.toml"
    folder.mkdir()
    p = load_problem(folder)
    assert p.value == "a folder" and "readable TOML file" in p.expected


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "spec.toml"
    os.mkfifo(fifo)
    outcome: list = []

    def load() -> None:
        try:
            load_spec(fifo)
        except SpecError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=load, daemon=True)  # a daemon: a hung open cannot block the run
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive(), "load_spec blocked on a FIFO"
    (exc,) = outcome
    assert [p.value for p in exc.problems] == ["a FIFO (named pipe)"]


def test_a_dangling_symlink_says_where_it_points(tmp_path):
    link = tmp_path / "spec.toml"
    link.symlink_to(tmp_path / "gone.toml")
    p = load_problem(link)
    assert "symbolic link" in p.value and "gone.toml" in p.value and "does not exist" in p.value


def test_a_symlink_loop_is_named(tmp_path):
    link = tmp_path / "spec.toml"
    link.symlink_to(link)
    assert load_problem(link).value == "a symbolic link loop"


def test_a_file_larger_than_any_spec_is_refused_unread(tmp_path):
    from msc_bayes.spec import MAX_SPEC_BYTES

    path = tmp_path / "spec.toml"
    path.write_text(VALID_TOML + "#" * MAX_SPEC_BYTES + "\n", encoding="utf-8")
    assert "bytes" in load_problem(path).value


def test_non_utf8_names_line_and_byte(tmp_path):
    path = tmp_path / "spec.toml"
    path.write_bytes(VALID_TOML.encode() + "name = 'caf\xe9'\n".encode("latin-1"))
    p = load_problem(path)
    assert p.row == 3 and "byte 12 of line 3" in p.expected and "UTF-8" in p.expected


def test_a_utf8_byte_order_mark_is_not_a_toml_error(tmp_path):
    path = tmp_path / "spec.toml"
    path.write_bytes(b"\xef\xbb\xbf" + VALID_TOML.encode())
    assert load_spec(path).outcome == "edss_change"
