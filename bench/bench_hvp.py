"""Cost of one Hessian-vector product in gradient evaluations, side by side with PyHessian's HVP.

Run: python bench/bench_hvp.py   (prints a markdown table of ratios)"""
import sys, warnings, torch
sys.path.insert(0, __file__.rsplit('/', 1)[0])
from common import reference_case, timeit, header, table
import localgeom_nb as lg

def main():
    torch.set_num_threads(int(__import__('os').environ.get('BENCH_THREADS', 1)))
    model, loss_fn, (X, y) = reference_case()
    params = [p for p in model.parameters()]
    v = [torch.randn_like(p) for p in params]
    def grad(): return torch.autograd.grad(loss_fn(model(X), y), params)
    t_grad, _ = timeit(grad, repeats=21)
    curv = lg.Curvature(model, loss_fn, (X, y), device="cpu", progress=False)
    vf = curv.flatten(v)
    curv.hvp_flat(vf)  # builds the cached graph once
    t_cached, _ = timeit(lambda: curv.hvp_flat(vf), repeats=21)
    fresh = lg.Curvature(model, loss_fn, (X, y), device="cpu", progress=False, cache_graph=False)
    t_fresh, _ = timeit(lambda: fresh.hvp_flat(vf), repeats=21)
    V = torch.randn(32, curv.dim)
    t_loop, _ = timeit(lambda: curv.hvp_batch(V), repeats=5)
    curv.chunk_size = 32
    t_vmap, _ = timeit(lambda: curv.hvp_batch(V), repeats=5)
    rows = [dict(method="gradient (autograd)", ms=t_grad * 1e3, x_grad=1.0),
            dict(method="localgeom HVP, cached graph", ms=t_cached * 1e3, x_grad=t_cached / t_grad),
            dict(method="localgeom HVP, fresh graph", ms=t_fresh * 1e3, x_grad=t_fresh / t_grad),
            dict(method="localgeom 32 probes, loop (per HVP)", ms=t_loop / 32 * 1e3, x_grad=t_loop / 32 / t_grad),
            dict(method="localgeom 32 probes, vmap chunk 32 (per HVP)", ms=t_vmap / 32 * 1e3, x_grad=t_vmap / 32 / t_grad)]
    try:
        from pyhessian import hessian as PyHessian
        from pyhessian.utils import hessian_vector_product
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hc = PyHessian(model, loss_fn, data=(X, y), cuda=False)
            t_py, _ = timeit(lambda: hessian_vector_product(hc.gradsH, hc.params, v), repeats=21)
        rows.append(dict(method="PyHessian HVP (cached graph)", ms=t_py * 1e3, x_grad=t_py / t_grad))
        for r in rows: r["vs_PyHessian"] = r["ms"] / (t_py * 1e3)
    except ImportError: print("pyhessian not installed: its row is skipped")
    header("One HVP in gradient evaluations: tanh MLP 64-128-128-10, digits, full batch, float32")
    table(rows, ["method", "ms", "x_grad", "vs_PyHessian"])

if __name__ == "__main__": main()
