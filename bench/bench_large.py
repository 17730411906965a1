"""Per-layer R_med of every attention and MLP matrix of a GPT-2-sized model (transformers GPT-2, random weights).

Routes, per record of all the matrices (`transformer_layers`: c_attn = fused q|k|v, c_proj, c_fc, mlp.c_proj per block):
- "exact": the exact diagonal where affordable (GPT-2's Conv1D has no output-space shortcut: one HVP per coordinate);
- "per-layer xdiag k": XDiag with k probes restricted to each matrix (k HVPs per matrix, batched probes);
- "whole hutchinson k" / "whole xdiag k": k probes over all matrices at once, the diagonal split per matrix (k HVPs in all).
R_med is taken per matrix and, for the fused c_attn, also of its q, k and v parts (`split_qkv`); the errors cover both.
Reported: HVPs, seconds per record and as a ratio to one AdamW training step on the same batch, peak memory of a
record vs a training step (CUDA), and on a mid-sized config the error of each route's R_med against the exact one.
Aim on GPU: a whole-model record in <= 50 training steps' time.

Run: python bench/bench_large.py            (CUDA: full 124M GPT-2 at batch 8 x 512 tokens, plus a mid-sized config)
     python bench/bench_large.py --cpu      (reduced configs, < 2 min on 2 cores; also chosen when there is no CUDA)"""
import math, os, statistics, sys, time, warnings
import torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import header, table

# n_layer, n_embd, n_head, vocab, seq, batch; k = probes of the estimators
CONFIGS = dict(
    cpu=dict(n_layer=2, n_embd=32, n_head=4, vocab=256, seq=32, batch=4, k=(8,)),
    cpu_mid=dict(n_layer=1, n_embd=8, n_head=2, vocab=32, seq=8, batch=4, k=(16, 64)),
    gpu=dict(n_layer=12, n_embd=768, n_head=12, vocab=50257, seq=512, batch=8, k=(16,)),
    gpu_mid=dict(n_layer=2, n_embd=64, n_head=4, vocab=1024, seq=128, batch=4, k=(16, 128)),
)

def gpt2(cfg, device, seed=0):
    "A GPT-2 LM with random weights from a config (nothing downloaded), float32, on `device`, and one token batch."
    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel
    transformers.logging.set_verbosity_error()
    torch.manual_seed(seed)
    c = GPT2Config(n_layer=cfg["n_layer"], n_embd=cfg["n_embd"], n_head=cfg["n_head"], vocab_size=cfg["vocab"],
                   n_positions=cfg["seq"], bos_token_id=0, eos_token_id=0, resid_pdrop=0., embd_pdrop=0., attn_pdrop=0.)
    model = GPT2LMHeadModel(c).to(device)
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randint(0, cfg["vocab"], (cfg["batch"], cfg["seq"]), generator=g).to(device)
    return model, dict(input_ids=x, labels=x)

def _sync(device):
    if device.type == "cuda": torch.cuda.synchronize()

def _peak_reset(device):
    if device.type == "cuda": torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()

def _peak(device):
    return torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else math.nan

def train_step_time(model, batch, device, repeats=3):
    "Median seconds of one AdamW step (forward, backward, update) on `batch`, and its peak memory (MiB, CUDA)."
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    def step():
        opt.zero_grad(set_to_none=True)
        model(**batch).loss.backward(); opt.step(); _sync(device)
    step()
    _peak_reset(device)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter(); step(); ts.append(time.perf_counter() - t0)
    peak = _peak(device)
    model.load_state_dict(state); opt.zero_grad(set_to_none=True)
    del opt
    return statistics.median(ts), peak

def per_layer(curv, flat_or_dict):
    "R_med of each block from a flat diagonal over the whole selection, or from a name -> tensor dict."
    from localgeom_nb.stats import r_med
    from localgeom_nb.hf import split_qkv
    d = curv.unflatten(flat_or_dict) if torch.is_tensor(flat_or_dict) else flat_or_dict
    out = {b: r_med({n: d[n] for n in names}) for b, names in curv.blocks.items()}
    out.update({k: r_med(v) for k, v in split_qkv(d, curv.model).items()})    # the q, k, v parts of fused c_attn
    return out

def routes(curv, k, exact_max):
    "Yield (route, function returning {block: r_med}) for the routes affordable at this size."
    from localgeom_nb.estimators import hutchinson_diag, xdiag
    op = curv.operator()
    for n in k:
        yield f"whole hutchinson {n}", lambda: per_layer(curv, hutchinson_diag(op, n, seed=0)[0])
        yield f"whole xdiag {n}", lambda: per_layer(curv, xdiag(op, n, seed=0)[0])
        yield f"per-layer xdiag {n}", lambda: per_layer(curv, curv.diagonal(method="xdiag", n_probes=n, progress=False))
    if max(curv.block_dim(b) for b in curv.blocks) <= exact_max:
        yield "exact", lambda: per_layer(curv, curv.diagonal(method="exact", force=True, progress=False))

def bench(name, device, exact_max, chunk=None, quick=False):
    "Rows of the table for one config: each route's cost, memory and (with exact) R_med error (`quick`: the fewest probes)."
    from localgeom_nb.operator import Curvature
    from localgeom_nb.hf import hf_objective, transformer_layers
    cfg = dict(CONFIGS[name])
    if quick: cfg["k"] = cfg["k"][:1]
    model, batch = gpt2(cfg, device)
    t_step, mem_step = train_step_time(model, batch, device)
    model.eval()
    curv = Curvature(model, data=batch, layers=transformer_layers(model), device=device, progress=False,
                     chunk_size=chunk, **hf_objective(model))
    n_params = sum(p.numel() for p in model.parameters())
    curv.hvp_batch(torch.zeros(1, curv.dim, device=device))      # warm-up (allocator, first graph)
    out, ref = [], None
    for route, f in routes(curv, cfg["k"], exact_max):
        curv.clear_cache(); _peak_reset(device)
        h0, t0 = curv.n_hvp, time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = f()
        _sync(device)
        secs = time.perf_counter() - t0
        out.append(dict(config=f"{name} ({n_params:,} params, {len(curv.blocks)} matrices)", route=route,
                        n_hvp=curv.n_hvp - h0, seconds=secs, x_step=secs / t_step, peak_MiB=_peak(device),
                        step_peak_MiB=mem_step, r=r))
        if route == "exact": ref = r
    for row in out:
        r = row.pop("r")
        if ref is not None:
            errs = [abs(r[b] - ref[b]) / ref[b] for b in ref if math.isfinite(ref[b]) and ref[b] > 0]
            row["R_med_err_median"], row["R_med_err_max"] = statistics.median(errs), max(errs)
    curv.clear_cache()
    del curv, model
    if device.type == "cuda": torch.cuda.empty_cache()
    return out, t_step

COLS = ["config", "route", "n_hvp", "seconds", "x_step", "peak_MiB", "step_peak_MiB", "R_med_err_median", "R_med_err_max"]

def main(cpu:bool=None, quick:bool=False):
    "Print the table; returns its rows (for bench/gpu_check.py; `quick`: one probe count per config)."
    cpu = (not torch.cuda.is_available()) if cpu is None else cpu
    device = torch.device("cpu" if cpu else "cuda")
    if cpu: torch.set_num_threads(int(os.environ.get("BENCH_THREADS", 2)))
    header(f"Whole-model R_med records of GPT-2 ({'reduced CPU configs' if cpu else 'CUDA: full 124M at 8 x 512'})")
    rows = []
    if cpu:
        rows += bench("cpu_mid", device, exact_max=256, quick=quick)[0]        # every route, against exact
        big, t = bench("cpu", device, exact_max=0)
    else:
        rows += bench("gpu_mid", device, exact_max=16384, chunk=64)[0]
        big, t = bench("gpu", device, exact_max=0, chunk=16)
    rows += big
    table(rows, COLS)
    best = min((r for r in big), key=lambda r: r["x_step"])
    print(f"\ntraining step: {t * 1e3:.1f} ms; cheapest whole-model record: {best['route']} = {best['x_step']:.1f} "
          f"training steps (aim on GPU: <= 50)")
    return rows

if __name__ == "__main__": main("--cpu" in sys.argv or None)
