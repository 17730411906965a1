#!/usr/bin/env python
"""Hessian trace on the reference tanh MLP (64-128-128-10, sklearn digits, full batch, float32), side by side:

  * PyHessian 0.1 `hessian(model, criterion, data, cuda=False).trace(maxIter=100, tol=0)`: 100-probe Hutchinson
    (tol=0 so that it really uses 100 probes; its default tol=1e-3 may stop earlier), timed including its
    gradient-graph set-up;
  * ours: `curv.trace(method="hutchinson", n_probes=100)`, and the variance-reduced `xtrace` and `hutchpp` at a
    third of the products (33), each on a fresh `Curvature` (graph set-up included).
Error = |estimate - exact| / exact, with the exact trace = sum of our exact diagonal (fast path, verified); the
exact trace itself is also timed as a method (its products are output-space products, not parameter HVPs).
RMS and median over seeds; the claim checked is "variance-reduced at 1/3 of the HVPs matches PyHessian's error".

usage: python bench/bench_trace.py [--seeds 10] [--threads 1]
"""
import argparse, copy, math, os, statistics, sys, time
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_diag import digits_mlp, table  # same reference problem and table printer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", 1)))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from localgeom_nb.operator import Curvature
    import localgeom_nb.diagonal  # noqa: F401  (patches Curvature.trace)
    try: from pyhessian import hessian as PyHessian   # optional extra: imported lazily
    except ImportError: PyHessian = None

    model, loss_fn, batch = digits_mlp()
    X, y = batch
    params = list(model.parameters())
    def grad(): return torch.autograd.grad(loss_fn(model(X), y), params)
    for _ in range(3): grad()
    ts = []
    for _ in range(9):
        t0 = time.perf_counter(); grad(); ts.append(time.perf_counter() - t0)
    t_grad = statistics.median(ts)

    exact = Curvature(model, loss_fn, batch, progress=False, device="cpu").trace(method="exact")
    tr = exact.value

    runs = {}
    def record(key, n_hvp, f):
        t0 = time.perf_counter(); v = f(); dt = time.perf_counter() - t0
        runs.setdefault(key, dict(err=[], t=[], n=n_hvp, se=[]))
        val, se = v if isinstance(v, tuple) else (v, float("nan"))
        runs[key]["err"].append(abs(val - tr) / abs(tr)); runs[key]["t"].append(dt); runs[key]["se"].append(se / abs(tr))

    for s in range(a.seeds):   # interleaved, so that load changes hit all methods alike
        if PyHessian is not None:
            def pyh():
                m = copy.deepcopy(model)
                torch.manual_seed(s)
                vals = PyHessian(m, loss_fn, data=(X, y), cuda=False).trace(maxIter=100, tol=0.)
                assert len(vals) == 100
                return (sum(vals) / len(vals), statistics.stdev(vals) / math.sqrt(len(vals)))
            record("PyHessian 0.1 trace(maxIter=100, tol=0) [Hutchinson]", 100, pyh)
        for method, n in (("hutchinson", 100), ("hutchinson", 33), ("xtrace", 33), ("hutchpp", 33), ("xtrace", 100)):
            def ours(method=method, n=n):
                e = Curvature(model, loss_fn, batch, progress=False, device="cpu").trace(n_probes=n, method=method, seed=s)
                return (e.value, e.stderr)
            record(f"ours {method} ({n})", n, ours)
        def ours_exact():   # sum of the exact diagonal: output-space products for every Linear layer
            c = Curvature(model, loss_fn, batch, progress=False, device="cpu")
            e = c.trace(method="exact")
            return (e.value, 0.), e.n_hvp
        t0 = time.perf_counter(); (v, _), n_ex = ours_exact(); dt = time.perf_counter() - t0
        r = runs.setdefault("ours exact (sum of exact diagonal)", dict(err=[], t=[], n=f"{n_ex} (output-space)", se=[]))
        r["err"].append(abs(v - tr) / abs(tr)); r["t"].append(dt); r["se"].append(0.)

    print(f"\n## Trace, tanh MLP 64-128-128-10, digits (N=1797, full batch, float32, {a.threads} thread(s)); "
          f"exact trace {tr:.4f} (sum of the exact diagonal, {exact.seconds:.2f} s); {a.seeds} seeds\n")
    ref = runs.get("PyHessian 0.1 trace(maxIter=100, tol=0) [Hutchinson]")
    rows = []
    rms = lambda e: math.sqrt(sum(x * x for x in e) / len(e))
    for k, r in runs.items():
        t = statistics.median(r["t"])
        rows.append([k, r["n"], f"{rms(r['err']):.4f}", f"{statistics.median(r['err']):.4f}",
                     f"{statistics.median(r['se']):.4f}", f"{t:.3f} s", f"{t/t_grad:.0f}",
                     f"{rms(r['err'])/rms(ref['err']):.2f}" if ref else "", f"{t/statistics.median(ref['t']):.2f}" if ref else ""])
    table(rows, ["method", "HVPs", "RMS rel. error", "median rel. error", "median rel. stderr", "time (median)",
                 "x grad", "error / PyHessian", "time / PyHessian"])
    if ref is None: print("\n(pyhessian not installed: `pip install localgeom_nb[pyhessian]` for the side-by-side column)")


if __name__ == "__main__":
    main()
