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
    "`--background` computes the records in a worker process (CPU): the numbers are the default run's."
    from localgeom_nb.track import load_runs
    tmp, _ = compared
    r = cli("compare", "--task", "digits-mlp", "--optimizers", "sgd,adam", "--steps", "10", "--every", "5",
            "--seeds", "2", "--out", "runs", "--device", "cpu", "--quiet", "--no-charts", "--background", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    key = ["run_id", "step", "layer", "stat"]
    a, b = (load_runs(d/"runs").query("stat != 'track_seconds'").sort_values(key).reset_index(drop=True) for d in (tmp, tmp_path))
    assert a[key].equals(b[key]) and len(a) > 0
    assert (a.value - b.value).abs().max() <= 1e-9 * a.value.abs().max()


def test_nproc_gives_the_same_records(compared, tmp_path):
    "`--nproc 2` relaunches under torch's launcher (gloo): each process holds half the curvature data, rank 0 writes."
    from localgeom_nb.track import load_runs
    tmp, _ = compared
    r = cli("compare", "--task", "digits-mlp", "--optimizers", "sgd,adam", "--steps", "10", "--every", "5",
            "--seeds", "2", "--out", "runs", "--device", "cpu", "--quiet", "--no-charts", "--nproc", "2", cwd=tmp_path,
            timeout=400)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert r.stdout.count("# localgeom compare: digits-mlp") == 1              # printed by rank 0 only
    key = ["run_id", "step", "layer", "stat"]
    a, b = (load_runs(d/"runs").query("stat not in ('track_seconds', 'loss', 'eval_loss')").sort_values(key)
            .reset_index(drop=True) for d in (tmp, tmp_path))
    assert a[key].equals(b[key]) and len(a) > 0
    assert ((a.value - b.value).abs() <= 1e-5 * a.value.abs() + 1e-12).all()   # float32: the order of the sums differs


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
       (["--device", "tpu"], ["argument --device: unknown device 'tpu'; valid: auto, cpu, cuda, cuda:N"]),
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
                 "--device", "--lr", "--method", "--ratio", "--formats", "--background", "--layers", "zipf-transformer",
                 "rmsprop", "DIR"):
        assert flag in out, flag
    assert main(["tasks"]) == 0 and "linear-net" in capsys.readouterr().out


@pytest.mark.skipif(not shutil.which("localgeom"), reason="the console script is not installed (pip install -e .)")
def test_console_script():
    r = subprocess.run(["localgeom", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "compare" in r.stdout


def test_help_does_not_import_torch():
    "`--help` (top level, show, tasks) loads neither torch nor pandas nor altair: it answers at once."
    probe = ("import sys\nfrom localgeom_nb.cli import main\nfor argv in (['--help'], ['show', '--help'], ['tasks', '--help']):\n"
             "    try: main(argv)\n    except SystemExit: pass\n"
             "print(sorted(m for m in ('torch', 'pandas', 'numpy', 'altair', 'localgeom_nb.experiments') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", probe], env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "[]", r.stdout[-500:]
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "localgeom_nb.cli", "--help"], env=ENV,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "usage: localgeom" in r.stdout, r.stderr[-2000:]
    loaded = {l.split("|")[-1].strip() for l in r.stderr.splitlines() if l.startswith("import time:")}
    assert "localgeom_nb" in loaded and not {"torch", "pandas", "altair"} & loaded, sorted(loaded)


def test_no_cuda_is_one_line(capsys, tmp_path):
    import torch
    if torch.cuda.is_available(): pytest.skip("CUDA is available here")
    from localgeom_nb.cli import main
    assert main(["compare", "--device", "cuda", "--out", str(tmp_path/"runs"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CUDA is not available" in err, err
    assert not (tmp_path/"runs").exists()


def test_compare_layers(tmp_path, capsys):
    "`compare --layers` tracks the chosen layers only; a name the model lacks fails at once, listing its layers."
    from localgeom_nb.cli import main
    from localgeom_nb.track import load_runs
    args = ["compare", "--steps", "4", "--every", "2", "--seeds", "1", "--no-charts", "--quiet", "--device", "cpu",
            "--out", str(tmp_path/"runs")]
    assert main([*args, "--layers", "conv"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--layers 'conv' matches no layer; layers: fc1, fc2, out" in err, err
    assert not (tmp_path/"runs").exists()
    assert main([*args, "--layers", "fc1,out"]) == 0
    out = capsys.readouterr().out
    assert "layers: fc1, out" in out and "| fc1 |" in out and "| fc2 |" not in out, out
    assert set(load_runs(tmp_path/"runs").layer) == {"fc1", "out", "(model)"}


def _copy_runs(compared, tmp_path):
    tmp, _ = compared
    dst = tmp_path/"runs"
    shutil.copytree(tmp/"runs", dst, ignore=shutil.ignore_patterns("charts", "summary.md"))
    return dst


def _edit_config(run, **kw):
    import json
    f = run/"config.json"
    f.write_text(json.dumps({**json.loads(f.read_text()), **kw}))


def _show(*args, env=None):
    "`localgeom show` in a subprocess, with warnings on (the default filters): (rc, stdout, stderr)."
    e = {k: v for k, v in ENV.items() if k != "PYTHONWARNINGS"}
    r = subprocess.run([sys.executable, "-m", "localgeom_nb.cli", "show", *map(str, args)], env=e, capture_output=True,
                       text=True, timeout=240)
    return r.returncode, r.stdout, r.stderr


def test_show_missing_metrics_counts_loaded_seeds(compared, tmp_path):
    "A run whose config says complete but whose metrics are gone is named on stderr and counted nowhere."
    runs = _copy_runs(compared, tmp_path)
    (runs/"digits-mlp"/"adam-s1"/"metrics.parquet").unlink()
    rc, out, err = _show(runs)
    assert rc == 0, err
    warn = [l for l in err.splitlines() if "adam-s1" in l]
    assert len(warn) == 1 and warn[0].startswith("localgeom show: warning: ") and "no metrics" in warn[0], err
    assert "Traceback" not in err
    assert "seeds: sgd 0, 1; adam 0;" in out, out
    assert "metrics missing for digits-mlp/adam-s1 (left out)" in out, out
    assert "| adam | 10 | 1 |" in out and "| sgd | 10 | 2 |" in out, out          # the loss table's seed counts
    assert "Mean over 1 seed pair " in out and "2 seed pairs" not in out, out     # only seed 0 pairs
    # compare on the same folder: the finished runs are not rerun; the same warning, the same counts
    r = cli("compare", "--task", "digits-mlp", "--optimizers", "sgd,adam", "--steps", "10", "--every", "5",
            "--seeds", "2", "--out", str(runs), "--device", "cpu", "--quiet", "--no-charts", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "adam-s1" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert "seeds: sgd 0, 1; adam 0;" in r.stdout and "metrics missing for digits-mlp/adam-s1" in r.stdout


def test_show_marks_stale_and_live_runs(compared, tmp_path):
    "A `running` run whose process is gone reads `stale: process gone`; one whose process lives reads `running`."
    import os, socket
    runs = _copy_runs(compared, tmp_path)/"digits-mlp"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _edit_config(runs/"sgd-s1", status="running", pid=dead.pid, host=socket.gethostname())
    _edit_config(runs/"adam-s1", status="running", pid=os.getpid(), host=socket.gethostname())
    from localgeom_nb.store import utc_now as _now
    _edit_config(runs/"adam-s1", heartbeat=_now())
    rc, out, err = _show(runs)
    assert rc == 0, err
    assert "2 complete (" not in out and "1 stale: process gone (digits-mlp/sgd-s1)" in out, out
    assert "1 running (digits-mlp/adam-s1)" in out, out


def _fake_runs(root, n_layers, seeds, model):
    "Runs of a `model` with `n_layers` layers (no task in their config), written through `RunStore` from synthetic rows."
    from localgeom_nb.plots import synthetic_runs
    from localgeom_nb.track import RunStore
    d = synthetic_runs(n_seeds=max(seeds) + 1, n_layers=n_layers, n_steps=4)
    for (o, s), g in d[d["seed"].isin(seeds)].groupby(["optimizer", "seed"]):
        st = RunStore(root/f"{model}-{o}-s{s}", config=dict(optimizer=o, seed=int(s), model=model, run_id=f"{model}-{o}-s{s}"))
        st.append(g.drop(columns="run_id"))
        st.close("complete")


def test_show_runs_of_different_models(tmp_path, capsys):
    "Runs with different layers: a one-line error that names `--layers` (the CLI option) and a choice that works."
    from localgeom_nb.cli import main
    _fake_runs(tmp_path/"mixed", 3, (0, 1), "big")
    _fake_runs(tmp_path/"mixed", 2, (2, 3), "small")
    assert main(["show", str(tmp_path/"mixed")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "different layers" in err and "--layers layers.0,layers.1" in err, err
    assert "layers=" not in err
    assert main(["show", str(tmp_path/"mixed"), "--layers", "layers.0,layers.1"]) == 0
    out = capsys.readouterr().out
    assert "| layers.1 |" in out and "| layers.2 |" not in out and "Mean over 4 seed pairs" in out, out
    assert main(["show", str(tmp_path/"mixed"), "--layers", "layers\\.[12]"]) == 2
    assert "layer 'layers.2' is not in every run" in capsys.readouterr().err
