"""Cost of the sharpness statistics: digits MLP 64-128-128-10 (tanh), 300 steps at batch 64 of SGD (lr 0.1) and of
Adam (lr 1e-3), recording R_med alone, or R_med with `sharpness=True` (lambda_1 of H and of P^-1/2 H P^-1/2 per layer and
for the whole model, Lanczos to a 1e-4 relative residual), every 50 steps on a fixed 512-sample subset. Prints the
time per record as a multiple of one training step, and the Lanczos products per record with warm starts (the
previous record's top vector) against cold ones.

Run: python bench/bench_sharpness.py   (BENCH_THREADS=1 by default; BENCH_REPEATS=3)"""
import os, sys, statistics, time
import torch, torch.nn.functional as F
sys.path.insert(0, __file__.rsplit('/', 1)[0])
from common import header, table
from localgeom_nb.data import digits, eval_subset, make_loader
from localgeom_nb.models import MLP
from localgeom_nb.track import Tracker, track_training

STEPS, EVERY, BATCH, N_EVAL = 300, 50, 64, 512
OPTS = dict(sgd=lambda ps: torch.optim.SGD(ps, lr=0.1), adam=lambda ps: torch.optim.Adam(ps, lr=1e-3))

def run(opt_name:str, tracked:bool, sharp:bool=False, cold:bool=False):
    "(seconds, tracker) for one training run."
    X, y = digits()
    model = MLP(64, (128, 128), 10, act="tanh", seed=0)
    opt = OPTS[opt_name](model.parameters())
    loader = make_loader(X, y, BATCH, shuffle=True, seed=0)
    tr = Tracker(model, F.cross_entropy, eval_subset(X, y, N_EVAL), every=EVERY, sharpness=sharp, stats=("r_med",),
                 device="cpu") if tracked else None
    if tr is not None and cold:                   # forget the previous top vectors: every Lanczos run starts afresh
        top = tr._top_eig
        tr._top_eig = lambda stat, layer, op: (tr._v0.clear(), top(stat, layer, op))[1]
    t0 = time.perf_counter()
    track_training(model, opt, loader, F.cross_entropy, STEPS, tr, progress=False)
    return time.perf_counter() - t0, tr

def main():
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", 1)))
    reps = int(os.environ.get("BENCH_REPEATS", 3))
    header(f"Sharpness records: digits MLP, {STEPS} steps, batch {BATCH}, every {EVERY} steps on {N_EVAL} samples")
    rows = []
    for name in OPTS:
        run(name, True, True)                     # warm-up
        plain, base, sharp, cold = [], [], [], []
        for _ in range(reps):                     # interleaved
            plain.append(run(name, False)[0])
            t, tb = run(name, True); base.append(tb.seconds / tb.n_records)
            t, ts = run(name, True, True); sharp.append(ts.seconds / ts.n_records); warm_hvp = ts.n_sharp_hvp / ts.n_records
            t, tc = run(name, True, True, cold=True); cold.append(tc.seconds / tc.n_records); cold_hvp = tc.n_sharp_hvp / tc.n_records
        step = statistics.median(plain) / STEPS
        rows.append(dict(optimizer=name, **{"training step (ms)": step * 1e3,
                         "R_med record / step": statistics.median(base) / step,
                         "+ sharpness, warm / step": statistics.median(sharp) / step,
                         "+ sharpness, cold / step": statistics.median(cold) / step,
                         "Lanczos HVPs / record, warm": warm_hvp, "cold": cold_hvp}))
    table(rows, list(rows[0]))

def lm_hvps(opt_name:str, cold:bool)->float:
    "Lanczos HVPs per sharpness record on the tiny Transformer (zipf-transformer task, 300 steps, every 50)."
    from localgeom_nb.experiments import get_task
    task = get_task("zipf-transformer")
    model = task.model(0)
    opt = OPTS[opt_name](model.parameters())
    tr = Tracker(model, task.loss_fn, task.eval_batch(), every=EVERY, sharpness=True, stats=("r_med",),
                 method="xdiag", n_probes=4, device="cpu")
    if cold:
        top = tr._top_eig
        tr._top_eig = lambda stat, layer, op: (tr._v0.clear(), top(stat, layer, op))[1]
    track_training(model, opt, task.loader(0), task.loss_fn, STEPS, tr, progress=False)
    return tr.n_sharp_hvp / tr.n_records

def main_lm():
    header(f"Warm starts on the tiny Transformer (zipf-transformer: 2 layers, d=32), {STEPS} steps, every {EVERY}")
    rows = [dict(optimizer=o, **{"Lanczos HVPs / record, warm": lm_hvps(o, False), "cold": lm_hvps(o, True)})
            for o in OPTS]
    for r in rows: r["saved"] = f"{1 - r['Lanczos HVPs / record, warm'] / r['cold']:.0%}"
    table(rows, list(rows[0]))

if __name__ == "__main__":
    main()
    main_lm()
