"""Data-parallel curvature: 1 process vs N ranks (gloo, CPU, 1 thread each) on the MLP 784-1024-1024-10 with 16k
synthetic samples in batches of 1024 (float32): seconds per HVP, top-5 eigenvalues (Lanczos, a fixed number of steps),
the exact diagonal (MLP route) and one tracked record (exact diagonal, R_med, trace, loss), and the scaling efficiency
t_1 / (N t_N).

Run: python bench/bench_distributed.py [--ranks 2] [--samples 16384] [--lanczos-steps 20]
(each configuration runs in fresh processes started with torch.multiprocessing spawn; MASTER_ADDR=127.0.0.1)"""
import argparse, os, socket, statistics, sys, time, warnings
import torch, torch.nn as nn

def _port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def _median(f, repeats):
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
    return statistics.median(ts)

def _worker(rank, world, port, args, q):
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    import torch.distributed as dist
    if world > 1: dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    import localgeom_nb.diagonal, localgeom_nb.spectrum, localgeom_nb.stats
    from localgeom_nb.operator import Curvature
    from localgeom_nb.distributed import shard
    from localgeom_nb.models import MLP
    from localgeom_nb.track import Tracker
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(args.samples, 784, generator=g), torch.randint(0, 10, (args.samples,), generator=g)
    if world > 1: X, y = shard((X, y), rank, world)
    data = [(X[i:i + args.batch], y[i:i + args.batch]) for i in range(0, len(y), args.batch)]
    model = MLP(784, (1024, 1024), 10, act="tanh", seed=0)
    curv = Curvature(model, nn.CrossEntropyLoss(), data, device="cpu", progress=False)
    v = torch.randn(curv.dim, generator=torch.Generator().manual_seed(1))
    out = dict(batches=len(data), samples=len(y))
    curv.hvp_flat(v)
    out["hvp"] = _median(lambda: curv.hvp_flat(v), args.repeats)
    t0 = time.perf_counter()
    e = curv.eigenvalues(5, max_iter=args.lanczos_steps, tol=1e-3, multiplicity=False)
    out["top5"], out["top5_values"] = time.perf_counter() - t0, e.values.tolist()
    out["diag"] = _median(lambda: curv.diagonal(verify=0), 1)
    out["route"] = curv.diagonal(verify=0).route
    tr = Tracker(model, nn.CrossEntropyLoss(), data, every=1, device="cpu")
    tr._checked = True   # the steady state: the first record alone checks the diagonal's route (basis products)
    out["record"] = _median(lambda: tr.step(tr.n_records, force=True), 1)
    if world > 1:                               # the communication of one product: an all-reduce of d floats
        x = torch.randn(curv.dim)
        dist.barrier()
        out["allreduce"] = _median(lambda: dist.all_reduce(x), 5)
    out["peak_rss_mib"] = __import__("resource").getrusage(__import__("resource").RUSAGE_SELF).ru_maxrss / 1024
    q.put((rank, out))
    if world > 1: dist.destroy_process_group()

def run(world, args):
    import torch.multiprocessing as mp
    ctx = mp.get_context("spawn")
    q, port = ctx.Queue(), _port()
    ps = [ctx.Process(target=_worker, args=(r, world, port, args, q)) for r in range(world)]
    for p in ps: p.start()
    res = dict(q.get(timeout=3600) for _ in ps)
    for p in ps: p.join()
    return {k: (max(o[k] for o in res.values()) if isinstance(res[0][k], float) else res[0][k]) for k in res[0]}

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--samples", type=int, default=16384)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--lanczos-steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"\n## Distributed curvature: MLP 784-1024-1024-10 ({784*1024+1024+1024*1024+1024+1024*10+10:,} parameters), "
          f"{args.samples:,} samples, batches of {args.batch}, float32\n(torch {torch.__version__}, 1 thread per "
          f"process, CPU={os.cpu_count()}, gloo; times are the slowest rank's)\n")
    one, many = run(1, args), run(args.ranks, args)
    rows = [("HVP (s)", "hvp"), (f"top-5 eigenvalues, {args.lanczos_steps} Lanczos steps (s)", "top5"),
            ("exact diagonal, MLP route (s)", "diag"), ("tracked record (s)", "record")]
    print(f"| quantity | 1 process | {args.ranks} ranks | speed-up | efficiency |\n|---|---|---|---|---|")
    for name, k in rows:
        print(f"| {name} | {one[k]:.3g} | {many[k]:.3g} | {one[k] / many[k]:.2f} | {one[k] / many[k] / args.ranks:.0%} |")
    print(f"| peak RSS per process (MiB) | {one['peak_rss_mib']:.0f} | {many['peak_rss_mib']:.0f} | | |")
    print(f"\nall-reduce of the 1,863,690 floats of one product: {many['allreduce'] * 1e3:.1f} ms "
          f"({many['allreduce'] / many['hvp']:.1%} of a distributed HVP)")
    d = max(abs(a - b) / abs(b) for a, b in zip(many["top5_values"], one["top5_values"]))
    print(f"\ntop-5 eigenvalues (1 process): {', '.join(f'{x:.5g}' for x in one['top5_values'])}; largest relative "
          f"difference with {args.ranks} ranks {d:.1e} (float32 sums in another order); route {many['route']}")

if __name__ == "__main__": main()
