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

And PyHessian's ResNet-20 (CIFAR shape, base width 16, BatchNorm in eval mode, residual blocks, 272k parameters,
a batch of 128 random 3x32x32 images, 10 classes): our exact diagonal of EVERY layer (the piecewise-linear route, one
backward pass per row of the loss Hessian) against one gradient and against basis Hessian-vector products (the
general route, timed on a sample of columns and extrapolated), with a check of sampled coordinates.

usage: python bench/bench_diag.py [--seeds 3] [--columns 256] [--threads 1] [--resnet-batch 128] [--no-mlp]
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
    ap.add_argument("--resnet-batch", type=int, default=128, help="images in the ResNet-20 batch (0: skip it)")
    ap.add_argument("--no-mlp", action="store_true", help="only the ResNet-20 part")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.resnet_batch: resnet_part(a.resnet_batch, a.threads)
    if not a.no_mlp: mlp_part(a)


def resnet_part(batch, threads, n_cols=24):
    "ResNet-20: the piecewise-linear exact diagonal of every layer against a gradient and basis HVPs."
    import sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from common import resnet20
    from localgeom_nb.operator import Curvature
    from localgeom_nb.piecewise import piecewise_diag
    model, loss_fn = resnet20(), nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(batch, 3, 32, 32, generator=g), torch.randint(0, 10, (batch,), generator=g)
    params = dict(model.named_parameters())
    def grad(): return torch.autograd.grad(loss_fn(model(x), y), list(params.values()))
    timed(grad, 2)
    t_grad, _ = timed(grad, 5)
    curv = Curvature(model, loss_fn, (x, y), progress=False, device="cpu")
    t_ours, (d, left, n_back, _) = timed(lambda: piecewise_diag(curv), 3)
    t_routed, dr = timed(lambda: Curvature(model, loss_fn, (x, y), progress=False, device="cpu").diagonal(), 1)
    routes = {r: list(dr.routes.values()).count(r) for r in dict.fromkeys(dr.routes.values())}
    gr = dict(zip(params, torch.autograd.grad(loss_fn(model(x), y), list(params.values()), create_graph=True)))
    picks = [(n, i) for n in ("0.weight", "4.conv1.weight", "9.conv2.weight", "14.weight")
             for i in torch.randperm(params[n].numel(), generator=g)[:n_cols // 4].tolist()]
    t0, worst = time.perf_counter(), 0.0
    for n, i in picks:                            # one basis HVP (double backward) per coordinate
        h = torch.autograd.grad(gr[n].flatten()[i], params[n], retain_graph=True)[0].flatten()[i]
        worst = max(worst, abs(h - d[n].flatten()[i]).item() / d[n].abs().max().item())
    t_col = (time.perf_counter() - t0) / len(picks)
    n_all, n_conv1 = sum(p.numel() for p in params.values()), params["0.weight"].numel()
    print(f"\n## Exact diagonal, ResNet-20 (PyHessian's, width 16, {n_all:,} parameters), batch {batch}, float32, "
          f"{threads} thread(s)\n")
    table([
        ["gradient (reference)", f"{t_grad:.2f} s", "1.0", ""],
        ["ours: exact diagonal, ALL layers (piecewise-linear route)", f"{t_ours:.2f} s", f"{t_ours / t_grad:.1f}",
         f"{n_back} backward passes (1 per loss-Hessian row, C+1 = 11 per block of samples); layers left out: "
         f"{len(left)}; max |diff| on {len(picks)} sampled coordinates vs basis HVPs: {worst:.1e} of max|d|"],
        ["ours: curv.diagonal(), first call (routes planned, a few coordinates checked once)", f"{t_routed:.2f} s",
         f"{t_routed / t_grad:.1f}", f"routes: {routes}; {dr.counts}"],
        ["basis HVPs, conv1 only (432 entries)", f"{t_col * n_conv1:.1f} s (extrapolated)",
         f"{t_col * n_conv1 / t_grad:.0f}", f"{t_col:.2f} s per column, timed on {len(picks)} columns"],
        ["basis HVPs, ALL layers", f"{t_col * n_all / 3600:.1f} h (extrapolated)", f"{t_col * n_all / t_grad:,.0f}", ""],
        ["BackPACK DiagHessian", "not run", "", "not installable here (pulls torchvision / a CUDA torch); it refuses "
         "residual blocks"],
    ], ["method", "time", "x grad", "notes"])


def mlp_part(a):
    "The tanh MLP on digits: the MLP route, basis HVPs, and the estimators' R_med error."
    from localgeom_nb.operator import Curvature
    from localgeom_nb.diagonal import exact_diag_columns   # (the module patches Curvature.diagonal / .trace)

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
    info = d_exact.info()
    c = info['counts']

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
