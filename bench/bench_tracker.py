"""Overhead of tracking: digits MLP 64-128-128-10 (tanh), 1000 SGD steps at batch 64, with and without a `Tracker`
recording every layer's EXACT R_med (and the quantile statistics, eval loss, run store on disk with a training-state
checkpoint per record, written with the records) every 50 steps on a fixed 512-sample subset, computed in the loop
(the default) and in the background on a copy of the parameters: a worker thread (`Tracker(background="thread")`)
and a forked worker process with one torch thread (`Tracker(background="process")`).
Target: tracked / untracked <= 1.10 at a record every 10 steps, quiet and under a concurrent load.

Run: python bench/bench_tracker.py   (BENCH_THREADS=1 by default, as `localgeom compare` on a CPU; BENCH_REPEATS=3;
BENCH_EVERY=50 by default; BENCH_LOAD=1 runs a second process doing float32 matmuls the whole time; BENCH_STEPS=1000;
BENCH_LONG=5000 also times the process worker on a run of that many steps, 0 skips it)

A run pays some costs once: forking the worker (~10 ms), the first record (it verifies its route: ~25 ms in the
worker), the first and last writes of the run folder, and the last record (computed after the last step). On a
1000-step run (0.55 s untracked) they are several percent; the longer run shows the cost per record without them.
"""
import os, sys, tempfile, statistics, time
import torch, torch.nn.functional as F
sys.path.insert(0, __file__.rsplit('/', 1)[0])
from common import header, table
from localgeom_nb.data import digits, eval_subset, make_loader
from localgeom_nb.models import MLP
from localgeom_nb.track import Tracker, track_training

STEPS, BATCH, N_EVAL = int(os.environ.get("BENCH_STEPS", 1000)), 64, 512
EVERY = int(os.environ.get("BENCH_EVERY", 50))

def _matmuls():
    "A concurrent CPU load: one thread of float32 matmuls, forever."
    torch.set_num_threads(1)
    a = torch.randn(512, 512)
    while True: a = (a @ a).tanh_()

def run(tracked:bool, folder=None, **kw):
    "Seconds for one training run (fresh model, optimizer and loader), and the tracker (or None)."
    X, y = digits()
    model = MLP(64, (128, 128), 10, act="tanh", seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = make_loader(X, y, BATCH, shuffle=True, seed=0)
    t0 = time.perf_counter()
    if tracked:
        with Tracker(model, F.cross_entropy, eval_subset(X, y, N_EVAL), every=EVERY, run=folder, optimizer_name="sgd", **kw) as tr:
            track_training(model, opt, loader, F.cross_entropy, STEPS, tr, progress=False)
    else:
        tr = None
        track_training(model, opt, loader, F.cross_entropy, STEPS, None, progress=False)
    return time.perf_counter() - t0, tr

def main():
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", 1)))
    if os.environ.get("BENCH_LOAD") == "1":
        import multiprocessing as mp
        load = mp.get_context("spawn").Process(target=_matmuls, daemon=True)
        load.start()
        print("(a second process does float32 matmuls during the whole run)")
    reps = int(os.environ.get("BENCH_REPEATS", 3))
    header(f"Tracker overhead: digits MLP, {STEPS} SGD steps, batch {BATCH}, exact R_med every {EVERY} steps on {N_EVAL} samples")
    run(False); run(True); run(True, background="thread"); run(True, background="process")   # warm-up
    variants = [("untracked", {}), ("tracked, in memory", dict(folder=False)), ("tracked, run folder + checkpoints", {}),
                ("tracked in a thread, run folder + checkpoints", dict(background="thread")),
                ("tracked in a process, run folder + checkpoints", dict(background="process"))]
    secs, recs = {v: [] for v, _ in variants}, {v: [] for v, _ in variants}
    for i in range(reps):                          # interleaved, so background load hits all variants alike
        for v, kw in variants:
            if v == "untracked": secs[v].append(run(False)[0]); continue
            with tempfile.TemporaryDirectory() as d:
                folder = None if kw.get("folder") is False else os.path.join(d, "run")
                t, tr = run(True, folder, **{k: x for k, x in kw.items() if k != "folder"})
            secs[v].append(t); recs[v].append(tr.seconds / tr.n_records)
    med = {v: statistics.median(x) for v, x in secs.items()}
    p = med["untracked"]
    table([dict(variant=v, seconds=med[v], ratio=med[v] / p,
                loop_ms_per_record=statistics.median(recs[v]) * 1e3 if recs[v] else float("nan")) for v, _ in variants],
          ["variant", "seconds", "ratio", "loop_ms_per_record"])
    print(f"\nrecords per run: {tr.n_records}; untracked step {p / STEPS * 1e3:.2f} ms")
    print("overhead ratio (run folder): " + ", ".join(f"{v.split(',')[0]} {med[v] / p:.3f}x" for v, _ in variants[2:])
          + "  (target <= 1.10x)")
    long = int(os.environ.get("BENCH_LONG", 5000))
    if long: longer(long, reps)

def longer(steps:int, reps:int):
    "Untracked against the process worker on a run of `steps` steps (the once-per-run costs spread over more records)."
    global STEPS
    STEPS, secs, recs = steps, {"untracked": [], "process": []}, []
    for i in range(reps):
        secs["untracked"].append(run(False)[0])
        with tempfile.TemporaryDirectory() as d:
            t, tr = run(True, os.path.join(d, "run"), background="process")
        secs["process"].append(t); recs.append(tr.seconds / tr.n_records)
    u, q = statistics.median(secs["untracked"]), statistics.median(secs["process"])
    print(f"\n{steps} steps ({tr.n_records} records): untracked {u:.2f} s, tracked in a process {q:.2f} s, "
          f"ratio {q / u:.3f}x; {statistics.median(recs) * 1e3:.3f} ms per record in the loop  (target <= 1.10x)")

if __name__ == "__main__": main()
