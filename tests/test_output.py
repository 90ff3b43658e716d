"""Run folders never cost a user anything: `msc_bayes.output` on its own, then `fit`/`report` through `main`.

Every test that can destroy something first puts a user's file or an earlier run in the way and
asserts afterwards that it is byte-identical and visible.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal as signals
import stat
import subprocess
import sys
from pathlib import Path

import arviz as az
import pytest
from test_diagnostics import fake_fit, undrawn_figures, write_fixture

from msc_bayes import inference, output
from msc_bayes.cli import main
from msc_bayes.errors import OutputError
from msc_bayes.evidence import load_evidence
from msc_bayes.spec import load_spec


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below `folder` (hidden ones too), by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def write_run(target: Path, files: dict[str, str], *, overwrite: bool = False, kind: str = "report") -> None:
    with output.run_folder(target, kind=kind, overwrite=overwrite, log=lambda line: None) as folder:
        for name, text in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text, encoding="utf-8")


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# --------------------------------------------------------------------------------------
# The folder rules
# --------------------------------------------------------------------------------------


def test_a_new_run_is_published_whole_with_a_marker_and_ordinary_permissions(tmp_path):
    old_umask = os.umask(0o022)
    try:
        write_run(tmp_path / "reports" / "run", {"a.nc": "posterior", "figures/k_forest.png": "png"})
    finally:
        os.umask(old_umask)
    run = tmp_path / "reports" / "run"
    assert stat.S_IMODE(run.stat().st_mode) == 0o755  # not mkdtemp's 0700
    marker = json.loads((run / output.MARKER).read_text(encoding="utf-8"))
    assert marker["kind"] == "report" and set(marker["files"]) == {"a.nc", "figures/k_forest.png"}
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["run"]  # no staging folder left
    assert not (run / output.PARTIAL_MARKER).exists()


def test_a_non_empty_folder_that_is_not_a_run_is_refused_even_with_overwrite(tmp_path):
    target = tmp_path / "work"
    target.mkdir()
    (target / "thesis.tex").write_text("years of work", encoding="utf-8")
    before = snapshot(tmp_path)
    for overwrite in (False, True):
        with pytest.raises(OutputError, match="not an msc_bayes run folder"):
            write_run(target, {"a.nc": "x"}, overwrite=overwrite)
    assert snapshot(tmp_path) == before


def test_a_file_in_the_way_is_refused(tmp_path):
    (tmp_path / "out").write_text("mine", encoding="utf-8")
    with pytest.raises(OutputError, match="is not a folder"):
        write_run(tmp_path / "out", {"a.nc": "x"})
    assert (tmp_path / "out").read_text(encoding="utf-8") == "mine"


def test_an_empty_folder_is_filled_not_replaced(tmp_path):
    target = tmp_path / "empty"
    target.mkdir()
    inode = target.stat().st_ino
    write_run(target, {"a.nc": "x"})
    assert target.stat().st_ino == inode and (target / "a.nc").read_text(encoding="utf-8") == "x"
    assert output.read_marker(target)["files"].keys() == {"a.nc"}


def test_an_earlier_run_needs_overwrite_and_stays_intact_until_the_new_one_is_complete(tmp_path):
    target = tmp_path / "run"
    write_run(target, {"a.nc": "old", "old_summary.csv": "old"})
    before = snapshot(target)
    with pytest.raises(OutputError, match="--overwrite"):
        write_run(target, {"a.nc": "new"})
    assert snapshot(target) == before
    with output.run_folder(target, kind="report", overwrite=True, log=lambda line: None) as folder:
        (folder / "a.nc").write_text("new", encoding="utf-8")
        assert snapshot(target) == before  # still there, visible, while the new run is written
    assert (target / "a.nc").read_text(encoding="utf-8") == "new" and not (target / "old_summary.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


@pytest.mark.parametrize("change", ["added", "edited"])
def test_an_earlier_run_holding_a_users_file_is_never_replaced(tmp_path, change):
    target = tmp_path / "run"
    write_run(target, {"report.md": "ours"})
    if change == "added":
        (target / "my_notes.txt").write_text("mine", encoding="utf-8")
    else:
        (target / "report.md").write_text("ours, annotated by the user", encoding="utf-8")
    before = snapshot(tmp_path)
    with pytest.raises(OutputError, match="did not write or that were changed"):
        write_run(target, {"report.md": "new"}, overwrite=True)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("where", ["same", "inside", "contains"])
def test_nothing_is_written_in_or_over_the_evidence_folder(tmp_path, where):
    data = tmp_path / "project" / "data"
    data.mkdir(parents=True)
    (data / "edss.csv").write_text("study,arm\n", encoding="utf-8")
    target = {"same": data, "inside": data / "out", "contains": tmp_path / "project"}[where]
    before = snapshot(tmp_path)
    with pytest.raises(OutputError, match="evidence folder"):
        output.check_target(target, overwrite=True, protect=[data])
    with pytest.raises(OutputError, match="evidence folder"):
        with output.run_folder(target, kind="fit", protect=[data]):
            raise AssertionError("never entered")  # pragma: no cover
    assert snapshot(tmp_path) == before


def test_an_unwritable_target_is_found_before_the_work_starts(tmp_path):
    entered = []
    with pytest.raises(OutputError, match="cannot"):
        with output.run_folder(Path("/proc/msc_bayes_test/run"), kind="fit"):
            entered.append(True)  # pragma: no cover
    assert entered == []


def test_a_failed_run_keeps_its_posteriors_visibly_and_leaves_the_earlier_run(tmp_path):
    target = tmp_path / "run"
    write_run(target, {"a.nc": "old"})
    before = snapshot(target)
    for attempt in (1, 2):
        with pytest.raises(RuntimeError, match="figure broke"):
            with output.run_folder(target, kind="report", overwrite=True, log=lambda line: None) as folder:
                (folder / "a.nc").write_text(f"sampled {attempt}", encoding="utf-8")
                raise RuntimeError("figure broke")
    assert snapshot(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "run.failed", "run.failed-2"]  # none replaced
    assert (tmp_path / "run.failed" / "a.nc").read_text(encoding="utf-8") == "sampled 1"
    assert "figure broke" in (tmp_path / "run.failed-2" / "README.txt").read_text(encoding="utf-8")


def test_a_failed_run_without_results_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with output.run_folder(tmp_path / "run", kind="fit"):
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_a_target_that_appears_during_the_run_is_not_replaced(tmp_path):
    target = tmp_path / "run"
    with pytest.raises(OutputError, match="not an msc_bayes run folder"):
        with output.run_folder(target, kind="fit", log=lambda line: None) as folder:
            (folder / "posterior.nc").write_text("sampled", encoding="utf-8")
            target.mkdir()
            (target / "theirs.txt").write_text("another program's", encoding="utf-8")
    assert snapshot(target) == {"theirs.txt": b"another program's"}
    assert (tmp_path / "run.failed" / "posterior.nc").read_text(encoding="utf-8") == "sampled"


def test_staging_folders_of_killed_runs_are_removed_or_kept_and_said(tmp_path):
    lines: list[str] = []
    for name, results in (("a", False), ("b", True)):
        staging = tmp_path / f".{name}.dead.partial"
        staging.mkdir()
        (staging / output.PARTIAL_MARKER).write_text(json.dumps(
            {"kind": "report", "target": name, "pid": dead_pid(), "host": os.uname().nodename}), encoding="utf-8")
        if results:
            (staging / "edss.nc").write_text("posterior", encoding="utf-8")
    alive = tmp_path / ".c.live.partial"  # a run still going (this test's parent process): untouched
    alive.mkdir()
    (alive / output.PARTIAL_MARKER).write_text(json.dumps(
        {"kind": "report", "target": "c", "pid": os.getppid(), "host": os.uname().nodename}), encoding="utf-8")
    foreign = tmp_path / ".someone_elses.partial"  # no marker of ours: never touched
    foreign.mkdir()
    with output.run_folder(tmp_path / "new", kind="fit", log=lines.append):
        pass
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [".c.live.partial", ".someone_elses.partial", "b.failed", "new"]
    assert (tmp_path / "b.failed" / "edss.nc").read_text(encoding="utf-8") == "posterior"
    said = "\n".join(lines)
    assert ".a.dead.partial" in said and "removing it" in said and ".b.dead.partial" in said and "b.failed" in said


@pytest.mark.parametrize("system_renames", [True, False])
def test_replacing_works_with_and_without_the_systems_atomic_renames(tmp_path, monkeypatch, system_renames):
    if not system_renames:
        def unsupported(src, dst, flags):
            raise NotImplementedError

        monkeypatch.setattr(output, "_renameat2", unsupported)
    target = tmp_path / "run"
    write_run(target, {"a.nc": "old"})
    write_run(target, {"a.nc": "new"}, overwrite=True)
    assert snapshot(target)["a.nc"] == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    with pytest.raises(FileExistsError):
        output.rename_noreplace(target, target)


def test_a_failed_swap_puts_the_earlier_run_back_under_its_own_name(tmp_path, monkeypatch):
    target = tmp_path / "run"
    write_run(target, {"a.nc": "old"})
    before = snapshot(target)
    real = output.rename_noreplace
    calls = []

    def unsupported(src, dst, flags):
        raise NotImplementedError

    def second_fails(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(5, "Input/output error")
        real(src, dst)

    monkeypatch.setattr(output, "_renameat2", unsupported)
    monkeypatch.setattr(output, "rename_noreplace", second_fails)
    with pytest.raises(OutputError, match="Input/output"):
        write_run(target, {"a.nc": "new"}, overwrite=True)
    assert snapshot(target) == before  # back in place, visible
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "run.failed"]


# --------------------------------------------------------------------------------------
# The commands
# --------------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A scratch project: evidence, two specs, the current folder, sampling replaced by `fake_fit`, and figure
    files written without drawing them (`undrawn_figures`: these tests are about run folders)."""
    data, edss_spec, ae_spec = write_fixture(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(inference.ENGINE, "fit", lambda spec, evidence, **kw: fake_fit(spec, evidence, **kw))
    monkeypatch.setattr(inference.ENGINE, "precompile", lambda models: [])
    undrawn_figures(monkeypatch)
    return data, edss_spec, ae_spec


def test_fit_into_the_evidence_folder_is_refused_and_the_evidence_kept(project, capsys):
    data, spec, _ = project
    before = snapshot(data)
    assert main(["fit", str(spec), "--data", str(data), "--out", str(data)]) == 2
    assert "evidence folder" in capsys.readouterr().err
    assert snapshot(data) == before


def test_fit_into_a_folder_with_a_users_file_is_refused(project, tmp_path, capsys):
    data, spec, _ = project
    work = tmp_path / "work"
    work.mkdir()
    (work / "unrelated.txt").write_text("mine", encoding="utf-8")
    assert main(["fit", str(spec), "--data", str(data), "--out", str(work)]) == 2
    assert "not an msc_bayes run folder" in capsys.readouterr().err
    assert snapshot(work) == {"unrelated.txt": b"mine"}


def test_fit_defaults_never_collide_and_overwrite_replaces_only_a_fit(project, tmp_path):
    data, spec, _ = project
    short = ["--draws", "20", "--allow-unconverged"]  # 20 draws fail the convergence gate (exit 3 without this)
    for _ in range(2):
        assert main(["fit", str(spec), "--data", str(data), *short]) == 0
    fits = sorted((tmp_path / "reports").iterdir())
    assert len(fits) == 2 and all(f.name.startswith("fit-edss_plain-") for f in fits)
    assert all(output.read_marker(f)["kind"] == "fit" for f in fits)
    assert main(["fit", str(spec), "--data", str(data), "--out", str(fits[0]), *short]) == 2
    assert main(["fit", str(spec), "--data", str(data), "--out", str(fits[0]), "--overwrite", *short]) == 0


def test_report_out_reports_keeps_every_earlier_run(project, tmp_path, capsys):
    data, edss_spec, _ = project
    assert main(["report", "--data", str(data), "--models", str(edss_spec), "--no-sensitivity"]) == 0
    before = snapshot(tmp_path / "reports")
    for extra in ([], ["--overwrite"]):
        assert main(["report", "--data", str(data), "--models", str(edss_spec), "--out", "reports", *extra]) == 2
    assert "not an msc_bayes run folder" in capsys.readouterr().err
    assert snapshot(tmp_path / "reports") == before


def test_report_refuses_an_earlier_run_before_any_sampling(project, tmp_path, monkeypatch, capsys):
    data, edss_spec, _ = project
    out = tmp_path / "run"
    assert main(["report", "--data", str(data), "--models", str(edss_spec), "--out", str(out), "--no-sensitivity"]) == 0

    def no_sampling(*a, **k):
        raise AssertionError("sampled although the output folder was refused")

    monkeypatch.setattr(inference.ENGINE, "fit", no_sampling)
    assert main(["report", "--data", str(data), "--models", str(edss_spec), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_a_failed_final_rename_leaves_the_earlier_report_visible_and_intact(project, tmp_path, monkeypatch, capsys):
    data, edss_spec, _ = project
    out = tmp_path / "run"
    args = ["report", "--data", str(data), "--models", str(edss_spec), "--out", str(out), "--no-sensitivity"]
    assert main(args) == 0
    before = snapshot(out)

    def broken_exchange(staging, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(output, "exchange", broken_exchange)
    assert main([*args, "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Traceback" not in err
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("run", ".run"))) == ["run", "run.failed"]


def test_a_link_or_a_link_loop_as_target_is_refused(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    with pytest.raises(OutputError, match="symbolic link"):
        write_run(tmp_path / "link", {"a.nc": "x"})
    with pytest.raises(OutputError, match="cannot be resolved|symbolic link"):
        write_run(tmp_path / "loop" / "run", {"a.nc": "x"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "loop", "real"] and not any((tmp_path / "real").iterdir())


@pytest.mark.parametrize("signum, raised", [("SIGINT", KeyboardInterrupt), ("SIGTERM", SystemExit)])
def test_a_signal_during_a_posterior_write_waits_for_the_write(tmp_path, monkeypatch, signum, raised):
    """Ctrl-C inside netCDF/HDF5 left its file lock held and the process hung at exit (tester's F08)."""
    data, spec, _ = write_fixture(tmp_path)
    fit = fake_fit(load_spec(spec), load_evidence(data), draws=20, chains=2)
    real = type(fit.tree).to_netcdf
    written = []

    def interrupted_write(tree, path, **kw):
        os.kill(os.getpid(), getattr(signals, signum))
        for _ in range(10**5):  # a handler would run here, mid-write
            pass
        real(tree, path, **kw)
        written.append(path)

    monkeypatch.setattr(type(fit.tree), "to_netcdf", interrupted_write)
    previous = signals.signal(signals.SIGTERM, lambda *a: (_ for _ in ()).throw(SystemExit(143)))
    try:
        with pytest.raises(raised):
            fit.to_netcdf(tmp_path / "posterior.nc")
    finally:
        signals.signal(signals.SIGTERM, previous)
    assert written == [tmp_path / "posterior.nc"]  # the write finished before the signal was acted on
    assert "posterior" in az.from_netcdf(tmp_path / "posterior.nc").children


def test_a_file_in_the_path_or_an_overlong_name_is_said_as_such(tmp_path):
    (tmp_path / "afile").write_text("mine", encoding="utf-8")
    with pytest.raises(OutputError, match="afile is not a folder"):
        write_run(tmp_path / "afile" / "run", {"a.nc": "x"})
    with pytest.raises(OutputError, match="too long"):
        write_run(tmp_path / ("r" * 250), {"a.nc": "x"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


@pytest.mark.parametrize("listed", ["thesis.docx", "../data/arms.csv", "/etc/passwd", "notes/plan.csv"])
def test_a_forged_marker_never_makes_a_users_file_removable(tmp_path, listed):
    """A marker listing a file no msc_bayes run writes is not ours: --overwrite refuses (tester's N02-N04)."""
    target = tmp_path / "out"
    target.mkdir()
    (target / "thesis.docx").write_bytes(b"precious")
    digest = hashlib.sha256(b"precious").hexdigest()
    (target / output.MARKER).write_text(json.dumps({"kind": "fit", "created_utc": "x", "files": {listed: digest}}),
                                        encoding="utf-8")
    before = snapshot(tmp_path)
    with pytest.raises(OutputError, match="not an msc_bayes run folder"):
        write_run(target, {"posterior.nc": "x"}, overwrite=True, kind="fit")
    assert snapshot(tmp_path) == before


def test_every_file_a_report_writes_is_a_name_its_marker_may_list(tmp_path):
    names = ["edss_change.nc", 'x"><img src=x>.nc', "edss_change_summary.csv", "edss_change_psense.csv",
             "figures/edss_change_forest.png", "index.html", "report.md", "run.json"]
    assert all(output.WRITES["report"].fullmatch(n) for n in names)
    assert not any(output.WRITES["report"].fullmatch(n) for n in ["notes.txt", "../x.nc", "a/b.csv", "x.csv"])
