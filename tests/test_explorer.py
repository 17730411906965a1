"Python-level tests of the explorer app: widgets driven through their own APIs (`button.click()`, `.value = ...`)."
import json, math, time
from pathlib import Path
from unittest import mock

import numpy as np, pandas as pd, pytest, torch, torch.nn as nn
from localgeom_nb.explorer import (explore, Explorer, TrainingSession, ChartPane, chart_data, live_charts, task_parts,
                                   STAT_GROUPS)
from localgeom_nb.models import half_mse
from localgeom_nb.plots import STAT_LABELS
from localgeom_nb.track import load_runs, read_config

TASK = "gaussian-mlp"   # a tiny shipped task (experiments.TASKS)


def _app(tmp_path, **kw):
    kw = {"optimizers": ["sgd"], "steps": 2000, "every": 5, "batch_size": 32, "runs_dir": str(tmp_path/"runs"),
          "charts": "svg", "refresh": 0.3, **kw}
    return explore(TASK, **kw)


def _choose(app, *keys):
    "Replace the optimizer rows through the UI: remove every row, then pick each optimizer and press Add."
    for r in app.rows: r.remove.click()
    for k in keys:
        app.w.add_kind.value = k
        app.w.add.click()


def _wait(cond, timeout=60):
    t = time.time()
    while time.time() - t < timeout:
        if cond(): return True
        time.sleep(0.02)
    return False


def test_start_pause_resume_stop(tmp_path):
    app = _app(tmp_path)
    _choose(app, "sgdm", "adam")
    assert [r.name.value for r in app.rows] == ["sgdm", "adam"]
    app.w.steps.value, app.w.every.value, app.w.batch_size.value, app.w.seed.value = 5000, 4, 16, 3
    app.w.start.click()
    try:
        assert app.running and app.w.start.disabled and not app.w.stop.disabled
        assert app.w.steps.disabled and app.w.add.disabled and app.rows[0].fields["lr"].disabled  # settings frozen while training
        assert app.wait(records=4, timeout=90), app.error
        app.w.pause.click()
        assert app.wait(until=lambda a: a.paused, timeout=60) and app.w.pause.description == "Resume"
        n = app.session.step; time.sleep(0.4)
        assert app.session.step == n and "paused" in app.status          # paused: no progress
        app.w.pause.click()
        assert not app.paused and app.w.pause.description == "Pause"
        k = app.n_records
        assert app.wait(records=k + 2, timeout=90), app.error
    finally:
        app.w.stop.click()
    assert not app.running and "stopped" in app.status and app.error == ""
    assert not app.w.start.disabled and app.w.stop.disabled and not app.w.steps.disabled
    runs = app.runs
    assert set(runs.optimizer) == {"sgdm", "adam"} and set(runs.seed) == {3}
    rsteps = sorted(runs.query("stat == 'r_med'").step.unique())
    assert len(rsteps) >= 3 and all(s % 4 == 0 for s in rsteps)
    last = app.session.step
    assert sorted(runs.query("stat == 'loss' and optimizer == 'adam'").step) == list(range(last))  # a loss per step
    # the charts hold the recorded data of both optimizers
    rm = chart_data(app.charts["rmed"])
    assert set(rm.optimizer) == {"sgdm", "adam"} and set(rm.step) == set(rsteps)
    assert set(chart_data(app.charts["loss"]).optimizer) == {"sgdm", "adam"}
    assert not chart_data(app.charts["ratio"]).empty
    assert app.panes["rmed"].widget.value.startswith("<svg")
    # Stop kept everything: each optimizer's run folder is closed and holds the same rows
    folder = Path(app.w.runs_dir.value)
    assert sorted(p.name for p in folder.iterdir()) == ["adam", "sgdm"]
    for name in ("adam", "sgdm"):
        assert (folder/name/"metrics.parquet").is_file()
        assert read_config(folder/name/"config.json")["status"] == "stopped"
    disk = load_runs(folder)
    key = ["run_id", "step", "layer", "stat"]
    pd.testing.assert_frame_equal(disk.sort_values(key).reset_index(drop=True)[key + ["value"]],
                                  runs.sort_values(key).reset_index(drop=True)[key + ["value"]])
    assert "progress" not in app.error and app.w.progress.value == last


def test_controls_respond_while_training(tmp_path):
    app = _app(tmp_path, optimizers=["sgd", "adam"])
    app.w.stats["diagonal quantiles"].value = True
    app.w.start.click()
    try:
        assert app.wait(records=4, timeout=90), app.error
        assert app.wait(until=lambda a: "d_q90" in [v for _, v in a.w.view_stat.options], timeout=30)
        app.w.view_stat.value = "d_q90"          # the chart switches stat while the session runs
        assert STAT_LABELS["d_q90"] in str(app.charts["rmed"].to_dict()["title"])
        app.w.num.value, app.w.den.value = "adam", "sgd"
        assert "[adam] / " in str(app.charts["ratio"].to_dict()["title"])
        assert app.running
    finally:
        app.stop()
    assert "stopped" in app.status


@pytest.mark.parametrize("setup, message", [
    (lambda app: setattr(app.rows[0].fields["lr"], "value", -0.1), "sgd: the learning rate lr=-0.1 must be a positive number"),
    (lambda app: [r.remove.click() for r in app.rows], "no optimizer chosen: add at least one optimizer"),
    (lambda app: setattr(app.rows[1].fields["betas"], "value", "0.9, oops"), "adam: betas='0.9, oops' is not a list of numbers"),
    (lambda app: setattr(app.rows[1].fields["betas"], "value", "1.5, 0.999"), "adam: Invalid beta parameter at index 0"),
    (lambda app: setattr(app.rows[1].name, "value", "sgd"), "two optimizers share a name"),
])
def test_invalid_inputs_show_a_message(tmp_path, setup, message):
    app = _app(tmp_path, optimizers=["sgd", "adam"])
    setup(app)
    app.w.start.click()
    assert message in app.error, app.error
    assert not app.running and app.session is None and "Traceback" not in app.error
    assert not Path(app.w.runs_dir.value).exists()        # nothing was started, nothing written


def test_start_while_running_and_fresh_folders(tmp_path):
    app = _app(tmp_path, optimizers=["sgd"], steps=3000)
    app.w.start.click()
    try:
        assert app.wait(records=1, timeout=60)
        app.w.start.click()      # the button is disabled in the browser; a scripted click still gets a clear answer
        assert "a session is running: press Stop" in app.error
    finally:
        app.stop()
    first = app.w.runs_dir.value
    app.run_sync(steps=6)
    assert app.w.runs_dir.value == first + "-2" and app.error == ""   # a second session never mixes with the first
    assert (Path(first + "-2")/"sgd"/"metrics.parquet").is_file()
    app.run_sync(steps=6)
    assert app.w.runs_dir.value == first + "-3"                        # numbered from the typed name, not -2-2


def test_divergence_stops_only_that_optimizer(tmp_path):
    X = torch.randn(256, 8); Y = X @ torch.randn(8, 1)
    net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))
    app = explore(model=net, loss_fn=half_mse, data=(X, Y), every=10, batch_size=64, steps=60, charts="svg",
                  optimizers={"hot": (torch.optim.SGD, dict(lr=50.)), "adam": "adam"}, runs_dir=str(tmp_path/"own"))
    assert list(app.w.task.options) == ["your model"] and list(app.w.layers.options) == ["0", "2"]
    app.w.start.click()
    app.join(120)
    assert not app.running and "finished" in app.status
    assert "hot diverged at step" in app.error and "Lower its learning rate (lr=50.0)" in app.error
    assert [r.status for r in app.session.runs] == ["diverged", "running"]
    assert app.runs.query("optimizer == 'adam' and stat == 'r_med'").step.max() == 60
    assert read_config(Path(app.w.runs_dir.value)/"hot"/"config.json")["status"] == "diverged"
    assert read_config(Path(app.w.runs_dir.value)/"adam"/"config.json")["status"] == "complete"
    assert np.isfinite(chart_data(app.charts["loss"])["mean"]).all()


def test_cuda_out_of_memory_is_a_message(tmp_path):
    app = _app(tmp_path, optimizers=["sgd", "adam"])
    oom = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
    with mock.patch.object(TrainingSession, "advance", side_effect=oom):
        app.w.start.click(); app.join(60)
    assert "CUDA ran out of memory at step 0: lower the batch size" in app.error
    assert "failed" in app.status and not app.running
    assert "OutOfMemoryError" in app.traceback and "Traceback" not in app.error


def test_overlay_and_export(tmp_path):
    first = _app(tmp_path, optimizers=["sgd", "adam"], runs_dir=str(tmp_path/"saved"))
    first.run_sync(steps=20)
    app = _app(tmp_path, optimizers=["sgdm"], runs_dir=str(tmp_path/"live"))
    app.w.load_dir.value = str(tmp_path/"nope")
    app.w.load.click()
    assert "does not exist" in app.error and app.saved is None
    app.w.load_dir.value = str(tmp_path/"saved")
    app.w.load.click()
    assert set(chart_data(app.charts["rmed"]).optimizer) == {"sgd (saved)", "adam (saved)"}
    app.run_sync(steps=20)
    opts = set(chart_data(app.charts["rmed"]).optimizer)
    assert opts == {"sgd (saved)", "adam (saved)", "sgdm"}
    app.w.num.value, app.w.den.value = "sgdm", "sgd (saved)"   # live vs saved: same seed, same steps
    assert not chart_data(app.charts["ratio"]).empty
    app.w.unload.click()
    assert set(chart_data(app.charts["rmed"]).optimizer) == {"sgdm"}
    for fmt in ("png", "svg"):
        app.w.export_fmt.value = fmt
        app.w.export_charts.click()
        for k in ("loss", "rmed", "ratio"):
            f = Path(app.w.runs_dir.value)/f"explorer-{k}.{fmt}"
            head = f.read_bytes()[:8]
            assert head.startswith(b"\x89PNG") if fmt == "png" else head.startswith(b"<svg")
    app.w.export_runs.click()
    back = pd.read_parquet(Path(app.w.runs_dir.value)/"explorer-runs.parquet")
    pd.testing.assert_frame_equal(back, app.runs)
    assert "runs saved:" in app.status and app.error == ""


def test_user_optimizer_class_and_tasks(tmp_path):
    app = _app(tmp_path, optimizers=[torch.optim.NAdam])
    row = app.rows[0]
    assert row.name.value == "nadam" and {"lr", "betas", "eps", "momentum_decay"} <= set(row.fields)
    assert "nadam" in [v for _, v in app.w.add_kind.options]
    assert set(app.w.device.options) >= {"auto", "cpu"} and ("cuda" in app.w.device.options) == torch.cuda.is_available()
    app.run_sync(steps=10)
    assert app.session.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert set(app.runs.optimizer) == {"nadam"} and app.error == ""
    with pytest.raises(ValueError, match="unknown optimizer 'lion'"): _app(tmp_path, optimizers=["lion"])
    with pytest.raises(ValueError, match="valid tasks"): explore("no-such-task")


def test_jupyter_chart_is_replaced_in_place():
    pane = ChartPane("jupyter", "rmed")
    w = pane.widget
    df = pd.DataFrame(dict(run_id="a", optimizer=["sgd"] * 2 + ["adam"] * 2, seed=0, step=[0, 5] * 2, layer="fc1",
                           stat="r_med", value=[3., 4., 3., 3.5], stderr=np.nan, loss=1., time=0.))
    pane.show(live_charts(df)["rmed"])
    spec1 = json.dumps(w.spec)
    pane.show(live_charts(df.assign(value=df.value * 2))["rmed"])
    assert pane.widget is w and json.dumps(w.spec) != spec1   # the same widget, a new spec: no new output
    assert type(w).__name__ == "JupyterChart" and type(w)._is_offline   # JavaScript bundled, no CDN


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_session(tmp_path):
    app = _app(tmp_path, optimizers=["sgd", "adam"], device="cuda")
    app.run_sync(steps=50)
    assert app.session.device.type == "cuda" and app.error == ""
    assert all(next(r.model.parameters()).is_cuda for r in app.session.runs)
    assert app.runs.query("stat == 'r_med'").step.max() == 50 and "device cuda" in app.status


def test_every_statistic_group(tmp_path):
    app = _app(tmp_path, optimizers=["sgdm", "adam"], every=5)
    for c in app.w.stats.values(): c.value = True
    app.w.layers.value = ("fc1", "out")               # a subset of the layers
    app.run_sync(steps=10)
    assert app.error == "", app.error
    r = app.runs
    assert set(r.layer) == {"fc1", "out", "(model)"}
    want = {"r_med", "d_q10", "d_median", "d_q90", "d_q99", "d_max", "r_q99", "trace", "top_eig"}
    for opt in ("sgdm", "adam"):
        assert want <= set(r.query("optimizer == @opt").stat)
    assert "r_med_precond" in set(r.query("optimizer == 'adam' and step > 0").stat)   # Adam's preconditioned geometry
    assert "r_med_precond" not in set(r.query("optimizer == 'sgdm'").stat)           # SGD has no diagonal preconditioner
    assert {v for _, v in app.w.view_stat.options} >= want | {"r_med_precond"}
    app.w.view_stat.value = "top_eig"
    assert set(chart_data(app.charts["rmed"]).layer) == {"fc1", "out", "(model)"}


def test_default_task_and_switching_tasks(tmp_path):
    app = explore(runs_dir=str(tmp_path/"runs"), charts="svg")          # lg.explore(): the default shipped task
    assert app.w.task.value == "digits-mlp" and set(app.w.task.options) >= {"digits-mlp", "gaussian-mlp", "linear-net"}
    assert [(r.name.value, r.fields["lr"].value) for r in app.rows] == [("sgdm", 0.01), ("adam", 0.001)]
    assert list(app.w.layers.options) == ["fc1", "fc2", "out"] and app.w.batch_size.value == 64
    assert (app.w.steps.value, app.w.every.value) == (2000, 10)         # long enough to try Pause
    app.rows[1].fields["lr"].value = 3e-3                                  # the user's own value survives a task switch
    app.w.task.value = "linear-net"
    assert list(app.w.layers.options) == ["W1", "W2"] and app.w.batch_size.value == 2000   # full-batch GD
    assert [r.fields["lr"].value for r in app.rows] == [0.005, 3e-3] and "two-layer linear" in app.w.task_info.value
    app.run_sync(steps=4)
    assert app.error == "" and app.session.parts.name == "linear-net"
    assert set(app.runs.query("stat == 'r_med'").layer) == {"W1", "W2", "(model)"}


def _has_points(chart):
    d = chart_data(chart)
    return "mean" in d and d["mean"].notna().any()


def test_sharpness_view_live(tmp_path):
    app = _app(tmp_path, optimizers=["sgd", "adam"], every=5)
    assert app.panes["sharp"].widget.layout.display == "none"          # hidden until sharpness is tracked
    app.w.stats["track sharpness"].value = True
    assert app.panes["sharp"].widget.layout.display is None and app.charts["sharp"].mark.type == "text"
    app.w.start.click()                                                 # live, in the background thread
    try:
        assert app.wait(until=lambda a: "sharp" in a.charts and _has_points(a.charts["sharp"])
                        and {"sgd", "adam"} <= set(chart_data(a.charts["sharp"]).dropna(subset=["mean"]).optimizer)
                        and a.session.step > 11, timeout=120), app.error
    finally:
        app.stop()
    assert app.error == "", app.error
    app.refresh(force=True)
    d = chart_data(app.charts["sharp"])
    vals = d.dropna(subset=["mean"])
    assert set(vals.stat) == {"sharpness", "precond_sharpness"} and set(vals.optimizer) == {"sgd", "adam"}
    assert {0, 5, 10} <= set(vals.query("optimizer == 'sgd' and stat == 'sharpness'").step)
    rec = app.runs.query("layer == '(model)' and stat == 'sharpness'").set_index(["optimizer", "step"])["value"]
    got = vals.query("stat == 'sharpness'").set_index(["optimizer", "step"])["mean"]
    assert np.allclose(got.sort_index(), rec.loc[got.index].sort_index())  # the chart draws the recorded values
    thr = d.dropna(subset=["threshold"]).set_index(["optimizer", "stat"])["threshold"].to_dict()
    lr = {r.name.value: r.fields["lr"].value for r in app.rows}
    b1 = float(app.rows[1].fields["betas"].value.split(",")[0])
    assert set(thr) == {("sgd", "sharpness"), ("sgd", "precond_sharpness"), ("adam", "precond_sharpness")}
    assert thr[("sgd", "sharpness")] == pytest.approx(2 / lr["sgd"], rel=1e-12)               # 2/η
    assert thr[("adam", "precond_sharpness")] == pytest.approx((2 + 2 * b1) / ((1 - b1) * lr["adam"]), rel=1e-12)
    assert (app.runs.stat == "stability_threshold").any()


def test_finite_divergence_is_flagged(tmp_path):
    torch.manual_seed(0)
    X = torch.randn(256, 8); Y = X @ torch.randn(8, 1)
    app = explore(model=nn.Linear(8, 1), loss_fn=half_mse, data=(X, Y), every=5, batch_size=64, steps=40, charts="svg",
                  optimizers={"hot": (torch.optim.SGD, dict(lr=5.)), "adam": "adam"}, runs_dir=str(tmp_path/"own"))
    app.w.start.click()
    app.join(120)
    hot = app.session.runs[0]
    assert hot.status == "diverged" and math.isfinite(hot.loss) and hot.loss > 10 * hot.loss0
    assert "more than 10× its step-0 loss" in app.error and "hot diverged at step" in app.error
    assert f"⚠ hot: diverged at step {hot.diverged_at}" in app.status and "finished" in app.status
    cfg = read_config(Path(app.w.runs_dir.value)/"hot"/"config.json")
    assert cfg["status"] == "diverged" and "10×" in cfg["diverged_why"]
    assert app.runs.query("optimizer == 'adam' and stat == 'r_med'").step.max() == 40
    app.w.log_loss.value = True                                       # one diverging run: read the others on a log axis
    assert app.charts["loss"].to_dict()["layer"][0]["encoding"]["y"]["scale"]["type"] == "log"


def test_status_feedback_during_a_long_record(tmp_path):
    "The status says something within 1 s of Start and at least every 2 s, even while one record takes 3 s."
    from localgeom_nb.track import Tracker
    real = Tracker.step
    def slow(self, step, *a, **kw):
        if step == 0: time.sleep(3)
        return real(self, step, *a, **kw)
    app = _app(tmp_path, optimizers=["sgd"], steps=3000)
    with mock.patch.object(Tracker, "step", slow):
        t0 = time.perf_counter()
        app.w.start.click()
        seen = [(time.perf_counter() - t0, app.status)]
        try:
            while time.perf_counter() - t0 < 4.5:
                time.sleep(0.05)
                if app.status != seen[-1][1]: seen.append((time.perf_counter() - t0, app.status))
        finally:
            app.stop()
    assert seen[0][0] < 1 and ("starting" in seen[0][1] or "running" in seen[0][1])
    gaps = np.diff([t for t, _ in seen] + [4.5])
    assert gaps.max() < 2, seen
    assert any("computing statistics at step 0" in s for _, s in seen), seen
    assert "Kernel ▸ Interrupt" in app.w.hint.value and "Stop" in app.w.hint.value


def test_layer_picker_for_many_layers(tmp_path):
    app = explore("zipf-transformer", optimizers=["adam"], charts="svg", runs_dir=str(tmp_path/"runs"))
    assert app.w.view_layers.layout.display is None and "attn" in [v for _, v in app.w.view_layers.options]
    app.w.view_layers.value = "attn"
    assert app.view_layers == [f"blocks.{i}.attn.{p}" for i in range(2) for p in "qkvo"] + ["(model)"]
    small = _app(tmp_path)
    assert small.w.view_layers.layout.display == "none" and small.view_layers is None
