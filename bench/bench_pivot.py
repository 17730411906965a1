"""Exact diagonal of a causal Transformer's first-block matrices (the C1 model: `text_transformer`, 2 blocks, d=64,
4 heads, 32 tokens; the `text-transformer` task's curvature batch of 8 sequences), with and without the pivot route
of `03a_diagonal` (the chain rule through the block's output, whose Hessian is computed once and shared by the
block's layers). Without it, every layer whose positions meet further down takes T x D_out output-space products
through the rest of the network. Also: one Hessian-vector product of the whole model, and the agreement of the two
routes (they must give the same numbers).

Run: python bench/bench_pivot.py   (BENCH_THREADS=1 by default)"""
import os, sys, time
import torch
sys.path.insert(0, __file__.rsplit('/', 1)[0])
from common import header, table
import localgeom_nb.diagonal as D
from localgeom_nb.operator import Curvature
from localgeom_nb.experiments import get_task
from localgeom_nb.models import text_transformer, lm_loss

LAYERS = [f"blocks.0.{m}" for m in ("attn.q", "attn.k", "attn.v", "attn.o", "mlp.fc1", "mlp.fc2")]

def run(pivot:bool, model, data)->tuple:
    "Seconds, products and diagonals per layer, one `Curvature` for the six layers (as `exact_r_meds` computes them)."
    keep = D._PIVOT_BYTES
    D._PIVOT_BYTES = keep if pivot else 0          # 0: no pivot fits, every layer takes its own products
    try:
        curv, out = Curvature(model, lm_loss, data, progress=False), {}
        for b in LAYERS:
            t0 = time.perf_counter()
            d = curv.diagonal("exact", layers=b, force=True, verify=0, progress=False)
            out[b] = (time.perf_counter() - t0, d.n_hvp, curv.flatten(d, b), d.reasons[b])
        return out
    finally: D._PIVOT_BYTES = keep

def main():
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", 1)))
    header("Exact diagonal of block 0 of the C1 Transformer: through the pivot `blocks.0` against per-layer products")
    model, data = text_transformer(0), get_task("text-transformer").eval_batch()
    curv = Curvature(model, lm_loss, data, progress=False)
    v = torch.randn(curv.dim)
    curv.operator() @ v
    t0 = time.perf_counter()
    for _ in range(5): curv.operator() @ v
    hvp = (time.perf_counter() - t0) / 5
    base, piv = run(False, model, data), run(True, model, data)
    rows = []
    for b in LAYERS:
        (s0, n0, d0, _), (s1, n1, d1, why) = base[b], piv[b]
        rows.append(dict(layer=b, products=n0, seconds=s0, pivot_products=n1, pivot_seconds=s1, speedup=s0 / s1,
                         rel_diff=float((d1 - d0).abs().max() / d0.abs().max()), pivot="yes" if "pivot" in why else "no"))
    tot0, tot1 = sum(r["seconds"] for r in rows), sum(r["pivot_seconds"] for r in rows)
    rows.append(dict(layer="(all six)", products=sum(r["products"] for r in rows), seconds=tot0,
                     pivot_products=sum(r["pivot_products"] for r in rows), pivot_seconds=tot1, speedup=tot0 / tot1,
                     rel_diff=max(r["rel_diff"] for r in rows), pivot=""))
    table(rows, ["layer", "pivot", "products", "seconds", "pivot_products", "pivot_seconds", "speedup", "rel_diff"])
    print(f"\none Hessian-vector product of the whole model: {hvp * 1e3:.1f} ms; the six layers through the pivot: "
          f"{tot1 / hvp:.0f} such products, per-layer: {tot0 / hvp:.0f}")

if __name__ == "__main__": main()
