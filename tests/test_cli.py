"""`localgeom` end to end, on the CPU, in a temporary folder: a tiny `compare` (2 seeds, a few steps) through a real
subprocess (`python -m localgeom_nb.cli`), the files it writes, the summary, `show` on the result, and the one-line
errors (exit code 2) for a bad task, a bad optimizer and a bad flag. The help texts are checked in-process."""
import os, shutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1",
       "PYTHONWARNINGS": "ignore"}


def cli(*args, cwd, timeout=240):
    "Run `python -m localgeom_nb.cli ARGS`; returns the CompletedProcess."
    return subprocess.run([sys.executable, "-m", "localgeom_nb.cli", *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    r = cli("compare", "--task", "digits-mlp", "--optimizers", "sgd,adam", "--steps", "10", "--every", "5",
            "--seeds", "2", "--out", "runs", "--device", "cpu", "--quiet", cwd=tmp)
    assert r.returncode == 0, r.stderr[-3000:]
    return tmp, r


def test_compare_writes_runs_charts_and_summary(compared):
    tmp, r = compared
    root = tmp/"runs"/"digits-mlp"
    for run in ("sgd-s0", "sgd-s1", "adam-s0", "adam-s1"):
        assert (root/run/"config.json").is_file() and (root/run/"metrics.parquet").is_file(), run
        assert not (root/run/"metrics").exists(), "chunks should be merged into metrics.parquet on close"
    charts = sorted(p.name for p in (root/"charts").iterdir())
    for name in ("rmed", "ratio", "loss", "dashboard", "precond"):
        for fmt in ("html", "png", "svg"):
            assert f"{name}.{fmt}" in charts, (name, fmt, charts)
    assert (root/"charts"/"rmed.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in (root/"charts"/"ratio.svg").read_text()[:2000]
    assert "cdn.jsdelivr" not in (root/"charts"/"dashboard.html").read_text()   # works offline
    md = (root/"summary.md").read_text()
    for part in ("# localgeom compare: digits-mlp", "## Loss at the last recorded step", "at matched steps",
                 "at matched loss", "| fc1 |", "| fc2 |", "| out |", "step 10", "4 complete", "charts/rmed.{html,png,svg}"):
        assert part in md, part
    assert md.strip() in r.stdout                                   # the summary is also printed


def test_runs_load_back(compared):
    from localgeom_nb.track import load_runs
    tmp, _ = compared
    df = load_runs(tmp/"runs")
    assert sorted(df.optimizer.unique()) == ["adam", "sgd"] and sorted(df.seed.unique()) == [0, 1]
    assert sorted(df.step.unique()) == [0, 5, 10]
    assert not df.duplicated(["run_id", "step", "layer", "stat"]).any()


def test_background_gives_the_same_records(compared, tmp_path):
    "`--background` computes the records in a worker thread: the numbers are the default run's."
    from localgeom_nb.track import load_runs
    tmp, _ = compared
    r = cli("compare", "--task", "digits-mlp", "--optimizers", "sgd,adam", "--steps", "10", "--every", "5",
            "--seeds", "2", "--out", "runs", "--device", "cpu", "--quiet", "--no-charts", "--background", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    key = ["run_id", "step", "layer", "stat"]
    a, b = (load_runs(d/"runs").query("stat != 'track_seconds'").sort_values(key).reset_index(drop=True) for d in (tmp, tmp_path))
    assert a[key].equals(b[key]) and len(a) > 0
    assert (a.value - b.value).abs().max() <= 1e-9 * a.value.abs().max()


def test_show(compared, capsys):
    tmp, _ = compared
    r = cli("show", "runs", cwd=tmp)
    assert r.returncode == 0, r.stderr
    assert "# runs: digits-mlp" in r.stdout and "at matched steps" in r.stdout
    from localgeom_nb.cli import main
    assert main(["show", str(tmp/"nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nowhere does not exist" in err, err


BAD = [(["--task", "mnist-mlp"], ["invalid choice: 'mnist-mlp'", "digits-mlp", "digits-cnn", "zipf-transformer", "linear-net", "gaussian-mlp"]),
       (["--optimizers", "sgd,adamax"], ["unknown optimizer 'adamax'; valid: sgd, sgdm, adam, adamw, rmsprop, adagrad"]),
       (["--steps", "-5"], ["argument --steps: must be at least 1"]),
       (["--stepz", "5"], ["unrecognized arguments: --stepz"])]

@pytest.mark.parametrize("args, expect", BAD[:2])
def test_bad_task_or_optimizer_subprocess(tmp_path, args, expect):
    r = cli("compare", *args, cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    for e in expect: assert e in r.stderr, (e, r.stderr)
    assert not (tmp_path/"runs").exists()


@pytest.mark.parametrize("args, expect", BAD)
def test_bad_arguments_one_line_exit_2(capsys, args, expect):
    from localgeom_nb.cli import main
    with pytest.raises(SystemExit) as e: main(["compare", *args])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    for x in expect: assert x in err, (x, err)


def test_help_is_complete(capsys):
    from localgeom_nb.cli import main
    for argv in (["--help"], ["compare", "--help"], ["tasks", "--help"], ["show", "--help"]):
        with pytest.raises(SystemExit) as e: main(argv)
        assert e.value.code == 0
    out = capsys.readouterr().out
    for flag in ("compare", "tasks", "show", "--task", "--optimizers", "--steps", "--seeds", "--every", "--out",
                 "--device", "--lr", "--method", "--ratio", "--formats", "--background", "zipf-transformer", "rmsprop", "DIR"):
        assert flag in out, flag
    assert main(["tasks"]) == 0 and "linear-net" in capsys.readouterr().out


@pytest.mark.skipif(not shutil.which("localgeom"), reason="the console script is not installed (pip install -e .)")
def test_console_script():
    r = subprocess.run(["localgeom", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "compare" in r.stdout
