"""One GPU check, <= 5 min on one CUDA GPU, printing one table:
- the `#| gpu` notebook cells (`nbdev_test --flags gpu` on the notebooks that have them, in parallel);
- batched-probe vs loop HVP throughput (`is_grads_batched` chunks vs one probe at a time), per probe;
- tracker overhead on digits-mlp (bench/bench_tracker.py, fewer steps);
- explorer rounds/s, headless (bench/explorer_speed.py);
- the large-layer bench (bench/bench_large.py: GPT-2 124M at 8 x 512 on CUDA).
Without CUDA it runs a reduced CPU mode (< 2 min: no notebooks, smaller problems) so that it cannot rot.

Run: python bench/gpu_check.py [--cpu]"""
import json, math, os, re, subprocess, sys, tempfile, time, traceback, warnings
from pathlib import Path
import torch
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from common import header, table

def gpu_notebooks()->dict:
    "Notebook -> number of `#| gpu` cells."
    out = {}
    for nb in sorted((ROOT/"nbs").glob("*.ipynb")):
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        n = sum(1 for c in cells if c["cell_type"] == "code" and re.match(r"\s*#\s*\|\s*gpu\b", "".join(c["source"])))
        if n: out[nb.name] = n
    return out

def check_notebooks(cuda:bool, timeout:int=200)->list:
    "Run the gpu-flagged notebooks with their gpu cells (CUDA only)."
    nbs = gpu_notebooks()
    what = ", ".join(f"{k} ({v})" for k, v in nbs.items())
    if not cuda: return [dict(check="#| gpu notebook cells", result=f"not run without CUDA: {what}", status="skipped")]
    pat = "|".join(re.escape(k) for k in nbs)
    cmd = ["nbdev_test", "--path", str(ROOT/"nbs"), "--flags", "gpu", "--n_workers", str(min(4, len(nbs))),
           "--file_re", f"^({pat})$", "--timing"]
    try: p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return [dict(check="#| gpu notebook cells", result=f"timed out after {timeout} s: {what}", status="FAIL")]
    tail = (p.stdout + p.stderr).strip().splitlines()[-6:]
    return [dict(check="#| gpu notebook cells", result=f"{what}: " + " / ".join(tail)[-400:],
                 status="ok" if p.returncode == 0 else "FAIL")]

def check_hvp(device, cpu:bool)->list:
    "ms per probe: a loop of single HVPs vs batched chunks, on the digits MLP and on a small GPT-2."
    from localgeom_nb.operator import Curvature
    from common import reference_case
    rows = []
    model, loss_fn, (X, y) = reference_case(train_steps=20)
    n = 256 if cpu else len(X)
    cases = [(f"digits MLP 64-128-128-10, {n} samples", Curvature(model, loss_fn, (X[:n], y[:n]), device=device, progress=False))]
    import bench_large
    from localgeom_nb.hf import hf_objective
    g, b = bench_large.gpt2(bench_large.CONFIGS["cpu" if cpu else "gpu_mid"], device)
    cases.append((f"GPT-2 {sum(p.numel() for p in g.parameters()):,} params",
                  Curvature(g.eval(), data=b, device=device, progress=False, **hf_objective(g))))
    k = 8 if cpu else 64
    for name, curv in cases:
        V = torch.randn(k, curv.dim, device=device)
        res = {}
        for label, c in (("loop", 1), (f"batched {k}", k)):
            curv.chunk_size = c
            curv.hvp_batch(V[:2])                                # warm-up, graph built
            if device.type == "cuda": torch.cuda.synchronize()
            t0 = time.perf_counter(); Y = curv.hvp_batch(V)
            if device.type == "cuda": torch.cuda.synchronize()
            res[label] = ((time.perf_counter() - t0) / k * 1e3, Y)
        fell = curv.chunk_size == 1              # the operator falls back to a loop when an op has no batching rule
        (l, Yl), (bt, Yb) = res["loop"], res[f"batched {k}"]
        err = ((Yl - Yb).norm() / Yl.norm()).item()
        rows.append(dict(check=f"HVP per probe: {name}", result=f"loop {l:.2f} ms, batched {bt:.2f} ms "
                         f"(x{l / bt:.1f}){' [fell back to the loop]' if fell else ''}; same products to {err:.1e}",
                         status="ok" if err < 1e-4 else "FAIL"))
    return rows

def check_tracker(cpu:bool)->list:
    "bench_tracker's digits-mlp overhead with fewer steps (in the loop, run folder and checkpoints)."
    import bench_tracker as bt
    bt.STEPS = 100 if cpu else 1000
    bt.run(False)                                                 # warm-up
    p = min(bt.run(False)[0] for _ in range(1 if cpu else 2))
    with tempfile.TemporaryDirectory() as d:
        t, tr = bt.run(True, os.path.join(d, "run"))
    return [dict(check=f"tracker overhead, digits-mlp ({bt.STEPS} steps, exact every {bt.EVERY})",
                 result=f"{t / p:.2f}x untracked ({tr.n_records} records, {tr.seconds / tr.n_records * 1e3:.0f} ms each, "
                        f"curvature on {tr.curv.device})",
                 status="info (short CPU run)" if cpu else "ok" if t / p <= 1.25 else "over 1.25x")]

def check_explorer(device, cpu:bool)->list:
    "Headless explorer rounds/s (one step of every optimizer per round)."
    import explorer_speed
    r = explorer_speed.session("digits-mlp", str(device), 60 if cpu else 300, 10)
    return [dict(check=f"explorer headless, digits-mlp, {r['steps']} steps", result=f"{r['steps_per_s']} rounds/s, "
                 f"statistics {r['stat_share']:.0%} of the time, on {r['device']}", status="ok" if not r["error"] else f"FAIL: {r['error']}")]

def check_large(cpu:bool)->list:
    import bench_large
    rows = bench_large.main(cpu, quick=cpu)
    big = [r for r in rows if not r["config"].startswith(("cpu_mid", "gpu_mid"))]
    best = min(big, key=lambda r: r["x_step"])
    mid = [r for r in rows if r["config"].startswith(("cpu_mid", "gpu_mid")) and "R_med_err_median" in r and r["route"] != "exact"]
    err = ", ".join(f"{r['route']} {r['R_med_err_median']:.0%}" for r in mid)
    return [dict(check="large-layer bench (GPT-2, every attention/MLP matrix)",
                 result=f"cheapest record {best['route']}: {best['x_step']:.1f} training steps, {best['seconds']:.2f} s; "
                        f"median R_med error vs exact (mid config): {err}",
                 status="ok" if (cpu or best["x_step"] <= 50) else "over 50 steps")]

def main(cpu:bool=None):
    cuda = torch.cuda.is_available() and not cpu
    device = torch.device("cuda" if cuda else "cpu")
    if not cuda: torch.set_num_threads(int(os.environ.get("BENCH_THREADS", 2)))
    t_all, rows = time.perf_counter(), []
    checks = [("notebooks", lambda: check_notebooks(cuda)), ("hvp", lambda: check_hvp(device, not cuda)),
              ("tracker", lambda: check_tracker(not cuda)), ("explorer", lambda: check_explorer(device, not cuda)),
              ("large", lambda: check_large(not cuda))]
    for name, f in checks:
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                got = f()
        except Exception as e:
            traceback.print_exc()
            got = [dict(check=name, result=f"{type(e).__name__}: {e}"[:300], status="ERROR")]
        for r in got: r["seconds"] = time.perf_counter() - t0
        rows += got
    gpu = torch.cuda.get_device_name() if cuda else "none (reduced CPU mode)"
    header(f"GPU check: CUDA device {gpu}; {time.perf_counter() - t_all:.0f} s in all")
    table(rows, ["check", "status", "seconds", "result"])
    return 0 if all(r["status"].startswith(("ok", "skipped", "over", "info")) for r in rows) else 1

if __name__ == "__main__": sys.exit(main(True if "--cpu" in sys.argv else None))
