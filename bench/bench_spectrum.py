"""Top eigenvalues, spectral density and HVP cost: PyHessian 0.1 side by side with localgeom_nb, in one run.

Reference case (bench/common.py): tanh MLP 64-128-128-10 on sklearn digits (1,797 samples, full batch, float32),
200 full-batch Adam steps from torch.manual_seed(0). Reference eigenvalues: our Lanczos on a float64 copy with
tol=1e-12 and exact residuals, cross-checked against scipy's ARPACK `eigsh` (float64). Times include building the
object (PyHessian's constructor runs the create_graph backward; our Curvature builds its cached graph on the first
HVP), medians over interleaved repeats. One intra-op thread unless BENCH_THREADS says otherwise.

Run: python bench/bench_spectrum.py [--repeats 5]   (prints markdown tables)"""
import argparse, os, sys, time, statistics, warnings
import numpy as np, torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import reference_case, header, table
import localgeom_nb as lg
from localgeom_nb.spectrum import lanczos, slq_density


def timed(f):
    t0 = time.perf_counter(); out = f(); return out, time.perf_counter() - t0

def rel_err(values, ref):
    "Largest relative error of `values` (sorted descending) against the reference top eigenvalues."
    v = torch.sort(torch.as_tensor(values, dtype=torch.float64), descending=True).values
    return ((v - ref[:len(v)]).abs() / ref[:len(v)].abs()).max().item()

def reference(model, loss_fn, data, k=5):
    "Float64 top-k by our Lanczos (tol 1e-12, exact residuals) and by scipy's eigsh on the same HVPs."
    ref = lg.Curvature(model, loss_fn, data, device="cpu", dtype=torch.float64, progress=False)
    r = ref.eigenvalues(k=k, tol=1e-12, verify=True)
    from scipy.sparse.linalg import LinearOperator, eigsh
    op = ref.operator()
    A = LinearOperator((op.dim, op.dim), matvec=lambda x: op.matvec(torch.from_numpy(np.asarray(x).reshape(-1))).numpy(),
                       dtype=np.float64)
    ev = eigsh(A, k=k, which="LA", tol=1e-12, v0=np.ones(op.dim), return_eigenvectors=False)
    return r, torch.sort(torch.from_numpy(ev), descending=True).values

class Counter:
    "Count calls of PyHessian's `hessian_vector_product` (patched into its module)."
    def __init__(self):
        import pyhessian  # noqa: F401  (the package re-exports the class under the submodule's name)
        ph = sys.modules["pyhessian.hessian"]
        self.ph, self.orig, self.n = ph, ph.hessian_vector_product, 0
        def counted(*a, **kw):
            self.n += 1; return self.orig(*a, **kw)
        ph.hessian_vector_product = counted
    def take(self):
        n, self.n = self.n, 0; return n

def eig_shim(T, eigenvectors=True):
    "`torch.eig` as PyHessian 0.1 calls it, via the symmetric solver (the tridiagonal is symmetric)."
    w, V = torch.linalg.eigh(T)
    return torch.stack([w, torch.zeros_like(w)], 1), V


def main():
    ap = argparse.ArgumentParser(); ap.add_argument("--repeats", type=int, default=5); args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", 1)))
    warnings.filterwarnings("ignore", message=".*create_graph=True.*")  # PyHessian's reference-cycle warning
    model, loss_fn, data = reference_case()
    X, y = data
    r_ref, ev_arpack = reference(model, loss_fn, data)
    lam = r_ref.values
    print(f"reference top-5 (float64 Lanczos, tol 1e-12): {[round(v, 6) for v in lam.tolist()]}; exact residuals <= "
          f"{r_ref.residuals.max().item():.1e}; ARPACK eigsh agrees to {rel_err(ev_arpack, lam):.1e} (relative)")

    try:
        from pyhessian import hessian as PyHessian
        counter = Counter()
    except ImportError:
        PyHessian = None; print("pyhessian is not installed: its rows are skipped (pip install localgeom_nb[pyhessian])")

    def py_eigs(top_n):
        torch.manual_seed(0)
        hc = PyHessian(model, loss_fn, data=(X, y), cuda=False)
        vals, _ = hc.eigenvalues(maxIter=100, tol=1e-3, top_n=top_n)
        model.zero_grad(set_to_none=True)
        return vals, counter.take()
    def ours(k, **kw):
        curv = lg.Curvature(model, loss_fn, data, device="cpu", progress=False)
        r = curv.eigenvalues(k=k, **kw)
        return r.values, r.n_hvp

    tasks = []
    if PyHessian: tasks += [("PyHessian power iteration, top-1 (maxIter=100, tol=1e-3)", "top-1", lambda: py_eigs(1))]
    tasks += [("localgeom Lanczos, top-1 (default tol=1e-4)", "top-1", lambda: ours(1)),
              ("localgeom Lanczos, top-1 (tol=1e-10, floored at 10 eps = 1.2e-6 in float32)", "top-1", lambda: ours(1, tol=1e-10)),
              ("localgeom Lanczos, top-1 (tol=1e-3)", "top-1", lambda: ours(1, tol=1e-3))]
    if PyHessian: tasks += [("PyHessian power iteration, top-5 (maxIter=100, tol=1e-3)", "top-5", lambda: py_eigs(5))]
    tasks += [("localgeom Lanczos, top-5 (default tol=1e-4)", "top-5", lambda: ours(5)),
              ("localgeom Lanczos, top-5 (multiplicity=False)", "top-5", lambda: ours(5, multiplicity=False))]
    times = {name: [] for name, _, _ in tasks}; outs = {}
    for _ in range(1): [f() for _, _, f in tasks]  # warm-up
    for _ in range(args.repeats):  # interleaved repeats
        for name, _, f in tasks:
            out, t = timed(f); times[name].append(t); outs[name] = out
    rows = []
    for name, task, _ in tasks:
        vals, n = outs[name]
        rows.append(dict(task=task, method=name, seconds=statistics.median(times[name]), n_hvp=n, rel_err=rel_err(vals, lam)))
    for r in rows:
        base = [q for q in rows if q["task"] == r["task"] and q["method"].startswith("PyHessian")]
        r["x_PyHessian_time"] = r["seconds"] / base[0]["seconds"] if base else float("nan")
    for r in rows: r["rel_err"] = f"{r['rel_err']:.1e}"
    header("Top eigenvalues: tanh MLP 64-128-128-10, digits, full batch, float32 "
           f"(median of {args.repeats} interleaved repeats; rel_err = max over the k values)")
    table(rows, ["task", "method", "seconds", "n_hvp", "rel_err", "x_PyHessian_time"])

    # spectral density: PyHessian's release as installed, then (for timing) with a torch.eig shim, interleaved with ours
    drows, t_pyd = [], None
    if PyHessian:
        torch.manual_seed(0)
        hc = PyHessian(model, loss_fn, data=(X, y), cuda=False)
        try:
            hc.density(iter=100, n_v=1); drows.append(dict(method="PyHessian density(iter=100, n_v=1)", seconds="ran", note="no error"))
        except Exception as e:
            drows.append(dict(method="PyHessian density(iter=100, n_v=1), as installed", seconds="-", n_hvp="-",
                              note=f"FAILS: {type(e).__name__}: {str(e).splitlines()[0][:80]}"))
        model.zero_grad(set_to_none=True); counter.take()
    def py_density():
        torch.manual_seed(0)
        out = PyHessian(model, loss_fn, data=(X, y), cuda=False).density(iter=100, n_v=1)
        model.zero_grad(set_to_none=True)
        return out
    def our_density(): return lg.Curvature(model, loss_fn, data, device="cpu", progress=False).density(n_runs=1, n_steps=100)
    ts_py, ts_ours = [], []
    had, old = hasattr(torch, "eig"), getattr(torch, "eig", None)
    if PyHessian: torch.eig = eig_shim
    try:
        for _ in range(args.repeats):
            if PyHessian:
                (nodes, w), t = timed(py_density); ts_py.append(t); n_py = counter.take()
            D, t = timed(our_density); ts_ours.append(t)
    finally:
        if PyHessian:
            if had: torch.eig = old
            else: del torch.eig
    if PyHessian:
        t_pyd = statistics.median(ts_py)
        drows.append(dict(method="PyHessian density(iter=100, n_v=1), with a torch.eig shim (eigh)", seconds=t_pyd, n_hvp=n_py,
                          note=f"weights sum {sum(w[0]):.6f}"))
    drows.append(dict(method="localgeom density(n_runs=1, n_steps=100)", seconds=statistics.median(ts_ours), n_hvp=100,
                      note=f"weights sum {D.weights.sum().item():.6f}; nodes in [{D.nodes.min().item():.3g}, {D.nodes.max().item():.3g}]"))
    for r in drows: r["x_PyHessian_time"] = r["seconds"] / t_pyd if (t_pyd and isinstance(r["seconds"], float)) else "-"
    header(f"Spectral density (SLQ, 100 Lanczos steps, one run; median of {args.repeats} interleaved repeats)")
    table(drows, ["method", "seconds", "n_hvp", "x_PyHessian_time", "note"])

    # HVP cost
    params = list(model.parameters())
    curv = lg.Curvature(model, loss_fn, data, device="cpu", progress=False)
    v = torch.randn(curv.dim)
    curv.hvp_flat(v)  # builds the cached graph
    def med(f, n=21):
        f(); ts = []
        for _ in range(n): ts.append(timed(f)[1])
        return statistics.median(ts)
    t_grad = med(lambda: torch.autograd.grad(loss_fn(model(X), y), params))
    t_hvp = med(lambda: curv.hvp_flat(v))
    hrows = [dict(method="gradient (forward + backward)", ms=t_grad * 1e3, x_grad=1.0),
             dict(method="localgeom HVP (cached graph)", ms=t_hvp * 1e3, x_grad=t_hvp / t_grad)]
    if PyHessian:
        from pyhessian.utils import hessian_vector_product
        hc = PyHessian(model, loss_fn, data=(X, y), cuda=False)
        vl = [t.view_as(p) for t, p in zip(curv.unflatten(v).values(), params)]
        t_py = med(lambda: hessian_vector_product(hc.gradsH, hc.params, vl))
        hrows.append(dict(method="PyHessian HVP (cached graph)", ms=t_py * 1e3, x_grad=t_py / t_grad))
        model.zero_grad(set_to_none=True)
    header("One Hessian-vector product vs one gradient (median of 21)")
    table(hrows, ["method", "ms", "x_grad"])


if __name__ == "__main__": main()
