"""Headless explorer session: Adam and SGD for a few hundred steps, driven from Python (no browser); prints steps/s.

    python bench/explorer_speed.py [--task digits-mlp] [--steps 300] [--every 10] [--devices cpu,cuda] [--sharpness]

Each device gets a fresh app; the numbers are rounds per second (one step of every optimizer per round), the share of
the time spent on statistics, and how long Start took to put something in the status line and to finish building the
session. `--sharpness` also tracks λ1(H) and λ1(P^-1/2 H P^-1/2) (Lanczos at every record). On a GPU the statistics
are computed on the device and only scalars reach the CPU."""
import argparse, json, tempfile, time
import torch
from localgeom_nb.explorer import explore


def session(task, device, steps, every, optimizers=("sgd", "adam"), sharpness=False):
    stats = ("r_med", "sharpness") if sharpness else ("r_med",)
    app = explore(task, optimizers=list(optimizers), device=device, steps=steps, every=every, charts="svg", stats=stats,
                  runs_dir=tempfile.mkdtemp(prefix=f"lg-explorer-{device}-"))
    t0 = time.perf_counter()
    app.w.start.click()                       # the background thread, as in JupyterLab
    started = time.perf_counter() - t0        # Start returns once the session is built and the thread runs
    app.join()
    s = app.session
    el = app._elapsed()
    return dict(task=task, device=str(s.device), steps=s.steps, sharpness=sharpness, records=s.n_records,
                seconds=round(el, 2), start_s=round(started, 2), steps_per_s=round(s.step / el, 1),
                stat_share=round(s.stat_seconds / el, 3), error=app.error or None,
                peak_gib=round(torch.cuda.max_memory_allocated() / 2**30, 3) if s.device.type == "cuda" else None)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="digits-mlp")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--every", type=int, default=10)
    p.add_argument("--devices", default="cpu,cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--sharpness", action="store_true", help="also track the sharpness (edge of stability)")
    a = p.parse_args()
    for d in a.devices.split(","): print(json.dumps(session(a.task, d, a.steps, a.every, sharpness=a.sharpness)))
