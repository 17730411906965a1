"""Cost of one Hessian-vector product in gradient evaluations, side by side with PyHessian's HVP; and over a
DataLoader (the digits MLP, 3 batches of 599): ours against a raw double backward over the same batches already
collated, and PyHessian's `dataloader_hv_product`, one product at a time (as Lanczos asks) and in blocks of probes.
hessian-eigenthings is not on PyPI under a usable name here, so it is not in the table.

Run: python bench/bench_hvp.py   (prints markdown tables of ratios)"""
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

def dataloader_part(repeats=9):
    "HVPs over a DataLoader of 3 batches: ours (data held after the first pass, or streamed) against a raw double backward."
    from torch.utils.data import DataLoader, TensorDataset
    model, loss_fn, (X, y) = reference_case()
    loader = DataLoader(TensorDataset(X, y), batch_size=599, shuffle=False)
    collated, params = list(loader), list(model.parameters())
    v = [torch.randn_like(p) for p in params]
    def raw():
        out = [torch.zeros_like(p) for p in params]
        for xb, yb in collated:
            g = torch.autograd.grad(loss_fn(model(xb), yb) * (len(xb) / len(X)), params, create_graph=True)
            for o, h in zip(out, torch.autograd.grad(g, params, v)): o += h
        return out
    t_raw, ref = timeit(raw, repeats=repeats)
    held = lg.Curvature(model, loss_fn, loader, device="cpu", progress=False)
    streamed = lg.Curvature(model, loss_fn, loader, device="cpu", progress=False)
    streamed.hold_bytes = 0                                           # iterate (and collate) the DataLoader every time
    vf = held.flatten(v)
    err = (held.hvp_flat(vf) - held.flatten(ref)).abs().max().item() / held.flatten(ref).abs().max().item()
    held.hvp_flat(vf)
    t_held, _ = timeit(lambda: held.hvp_flat(vf), repeats=repeats)
    t_stream, _ = timeit(lambda: streamed.hvp_flat(vf), repeats=repeats)
    V = torch.randn(8, held.dim)
    held.chunk_size = 1
    t_probes, _ = timeit(lambda: held.hvp_batch(V), repeats=3)
    rows = [dict(method="raw double backward, batches already collated", ms=t_raw * 1e3, x_raw=1.0),
            dict(method="ours, data held on the device after the first pass", ms=t_held * 1e3, x_raw=t_held / t_raw),
            dict(method="ours, 8 probes (per product)", ms=t_probes / 8 * 1e3, x_raw=t_probes / 8 / t_raw),
            dict(method="ours, DataLoader iterated for every product", ms=t_stream * 1e3, x_raw=t_stream / t_raw)]
    try:
        from pyhessian import hessian as PyHessian
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hc = PyHessian(model, loss_fn, dataloader=loader, cuda=False)
            t_py, _ = timeit(lambda: hc.dataloader_hv_product(v), repeats=repeats)
        rows.append(dict(method="PyHessian dataloader_hv_product", ms=t_py * 1e3, x_raw=t_py / t_raw))
    except ImportError: print("pyhessian not installed: its row is skipped")
    header(f"One HVP over a DataLoader (3 batches of 599, digits MLP, float32); max rel. diff vs raw {err:.1e}")
    table(rows, ["method", "ms", "x_raw"])

if __name__ == "__main__":
    main()
    dataloader_part()
