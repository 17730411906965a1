#!/usr/bin/env python
"""Exact and estimated Hessian diagonals on the reference tanh MLP (64-128-128-10, sklearn digits, full batch, float32).

Measured side by side in one run:
  * one full-batch gradient (the unit of cost);
  * our exact diagonal of ALL layers (`curv.diagonal()`: the MLP route, one backward pass of per-sample curvature factors);
  * basis Hessian-vector products for the 128x128 hidden layer (`2.weight` + `2.bias`), timed on a sample of
    columns and extrapolated to the whole layer (stated in the table);
  * R_med error of the Hutchinson and XDiag diagonals of `2.weight` (probes restricted to that parameter) vs the
    exact R_med, at 100 and 1000 probes, median over seeds.
BackPACK's DiagHessian cannot be installed here (it pulls torchvision / a CUDA torch), so its time on this MLP is the
anchors' measurement (2.6 s, ../shared/anchors.md B3), NOT measured side by side.

usage: python bench/bench_diag.py [--seeds 3] [--columns 256] [--threads 1]
"""
import argparse, os, statistics, time
import torch, torch.nn as nn

BACKPACK_DIAGHESSIAN_S = 2.58   # anchors.md B3: BackPACK DiagHessian, all layers, same MLP, 1 thread (other run)
BACKPACK_X_GRAD = 423           # the same figure in gradients of that run (gradient 6.1 ms)


def digits_mlp(steps=200, act=nn.Tanh):
    "The reference problem: standardised digits, MLP 64-128-128-10, 200 full-batch Adam steps from seed 0."
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X, dtype=torch.float32); X = (X - X.mean(0)) / (X.std(0) + 1e-6)
    y = torch.tensor(y)
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(64, 128), act(), nn.Linear(128, 128), act(), nn.Linear(128, 10))
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    for _ in range(steps):
        opt.zero_grad(); nn.functional.cross_entropy(m(X), y).backward(); opt.step()
    return m.eval(), nn.CrossEntropyLoss(), (X, y)


def timed(f, repeats=3):
    "Median wall time of `repeats` calls and the last result."
    ts, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter(); out = f(); ts.append(time.perf_counter() - t0)
    return statistics.median(ts), out


def r_med(d):
    "max|d| / median|d| (lower median)."
    a = d.abs().flatten()
    return (a.max() / a.median()).item()


def table(rows, header):
    w = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(k) for c, k in zip(r, w)) + " |"
    print(line(header)); print("|" + "|".join("-" * (k + 2) for k in w) + "|")
    for r in rows: print(line(r))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--columns", type=int, default=256, help="basis columns timed for the extrapolation")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", 1)))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from localgeom_nb.operator import Curvature
    import localgeom_nb.estimators  # noqa: F401  (patches Curvature.diagonal / .trace)
    from localgeom_nb.estimators import exact_diag_columns

    model, loss_fn, batch = digits_mlp()
    X, y = batch
    params = list(model.parameters())

    def grad(): return torch.autograd.grad(loss_fn(model(X), y), params)
    timed(grad, 3)
    t_grad, _ = timed(grad, 9)

    def exact_all():
        curv = Curvature(model, loss_fn, batch, progress=False, device="cpu")
        d = curv.diagonal()   # MLP route for every layer, 2 coordinates per layer verified against basis HVPs
        return curv, d
    t_exact, (curv, d_exact) = timed(exact_all, 3)
    info = curv.last_info; c = info['counts']

    # basis HVPs for the 128x128 layer (weight + bias), on a sample of columns, extrapolated
    ncol_layer = curv.block_dim("2")
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(ncol_layer, generator=g)[:a.columns]
    exact_diag_columns(curv, "2", indices=idx[:8], force=True)   # warm the cached gradient graph
    t0 = time.perf_counter()
    cols = exact_diag_columns(curv, "2", indices=idx, force=True)
    t_cols = (time.perf_counter() - t0) / a.columns
    flat_fast = curv.flatten(d_exact, "2")
    rel = ((cols - flat_fast[idx]).abs().max() / flat_fast.abs().max()).item()

    print(f"\n## Exact diagonal, tanh MLP 64-128-128-10, digits (N=1797, full batch, float32, {a.threads} thread(s))\n")
    table([
        ["gradient (reference)", f"{t_grad*1e3:.1f} ms", "1.0", ""],
        ["ours: exact diagonal, ALL layers (curv.diagonal())", f"{t_exact:.2f} s", f"{t_exact/t_grad:.0f}",
         f"{c['output']} output-space products + {c['verify']} verification + {c['timing']} timing HVPs; "
         f"routes {', '.join(f'{b}: {r}' for b, r in info['routes'].items())}"],
        ["basis HVPs, layer 2 (128x128 + bias, 16,512 entries)", f"{t_cols*ncol_layer:.1f} s (extrapolated)",
         f"{t_cols*ncol_layer/t_grad:.0f}", f"{t_cols*1e3:.2f} ms/column timed on {a.columns} random columns; "
         f"max |diff| vs ours {rel:.1e} of max|d|"],
        ["BackPACK DiagHessian, ALL layers (anchors B3, NOT side by side)", f"{BACKPACK_DIAGHESSIAN_S:.2f} s", f"{BACKPACK_X_GRAD}",
         "not installable here (pulls torchvision / CUDA torch)"],
    ], ["method", "time", "x grad", "notes"])
    print()
    table([
        ["ours exact (all layers) / basis HVPs (one layer)", f"{t_exact/(t_cols*ncol_layer):.3f}"],
        ["ours exact (all layers) / BackPACK DiagHessian, seconds (anchor figure, other run)", f"{t_exact/BACKPACK_DIAGHESSIAN_S:.2f}"],
        ["ours exact (all layers) / BackPACK DiagHessian, in gradients of each run", f"{t_exact/t_grad/BACKPACK_X_GRAD:.2f}"],
    ], ["ratio", "value"])

    # R_med of 2.weight: estimates with probes restricted to that parameter
    cw = Curvature(model, loss_fn, batch, layers=["2.weight"], progress=False, device="cpu")
    R_exact = r_med(d_exact["2.weight"])
    rows = []
    for method in ("hutchinson", "xdiag"):
        for n in (100, 1000):
            errs, derrs, ts = [], [], []
            for s in range(a.seeds):
                t0 = time.perf_counter()
                d = cw.diagonal(method=method, n_probes=n, seed=s)["2.weight"]
                ts.append(time.perf_counter() - t0)
                errs.append(abs(r_med(d) - R_exact) / R_exact)
                derrs.append(((d - d_exact["2.weight"]).norm() / d_exact["2.weight"].norm()).item())
            rows.append([method, n, f"{statistics.median(errs):.3f}", f"{statistics.median(derrs):.3f}",
                         f"{statistics.median(ts):.2f} s", f"{statistics.median(ts)/t_grad:.0f}"])
    print(f"\n## Estimated diagonal of 2.weight (16,384 entries), exact R_med = {R_exact:.3f}; "
          f"medians over {a.seeds} seeds; R_med = max|d| / lower median |d|\n")
    table(rows, ["method", "HVPs", "R_med rel. error", "diag rel. error", "time", "x grad"])


if __name__ == "__main__":
    main()
