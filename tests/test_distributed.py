"""Distributed curvature on the CPU with gloo: 2 ranks spawned once (torch.multiprocessing), each holding an uneven
shard of the data, against one process on the concatenated data, in float64. One spawn runs every check (a spawn costs
~10 s of imports here); the parent compares. Checked: the loss, HVPs (mean and sum reductions, -100 labels), Lanczos
top-k, SLQ nodes, traces (Hutchinson, XTrace, exact), the exact diagonal by all three routes (MLP, output-space,
basis columns) and XDiag, layer_stats; a DDP-wrapped model; an FSDP-like model refused; a DDP training loop with a
Tracker writing one run (rank 0) equal to the single-process run; a failing rank raising on every rank."""
import os, socket, time, traceback
import numpy as np, pandas as pd, pytest, torch, torch.nn as nn

WORLD, N, BS = 2, 13, 3   # 13 samples: shards of 6 and 7, batches of 3 (the last of rank 1 has 1 sample)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(N, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (N,), generator=g)
    y[[2, 9]] = -100                      # ignored labels, one in each shard
    return X, y


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)).double()


class _Net(nn.Module):
    "Not a Sequential: the exact diagonal takes the output-space route for its Linear layers."
    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.fc1, self.fc2 = nn.Linear(5, 4).double(), nn.Linear(4, 3).double()
    def forward(self, x): return self.fc2(torch.tanh(self.fc1(x)))


def _batches(X, y): return [(X[i:i + BS], y[i:i + BS]) for i in range(0, len(y), BS)]


def _train_data():
    g = torch.Generator().manual_seed(5)
    return torch.randn(4, 2 * WORLD, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (4, 2 * WORLD), generator=g)


def _np(x):
    if torch.is_tensor(x): return x.detach().numpy().copy()
    if isinstance(x, dict): return {k: _np(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)): return type(x)(_np(v) for v in x)
    return x


def _checks(curv, net_curv, sum_curv):
    "The numbers compared with one process (the same calls run there on the full data)."
    from localgeom_nb.estimators import xdiag
    v = torch.randn(curv.dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    V = torch.randn(3, curv.dim, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    out = dict(loss=curv.loss(), hvp=curv.hvp_flat(v), hvp_batch=curv.hvp_batch(V),
               hvp_layer=curv.hvp_flat(v[:curv.block_dim("0")], "0"), sum_hvp=sum_curv.hvp_flat(v),
               sum_loss=sum_curv.loss())
    e = curv.eigenvalues(3, tol=1e-10)
    out.update(top3=e.values, top3_vec={k: t.abs() for k, t in e.vectors.items()}, top1_layer=curv.eigenvalues(1, "2", tol=1e-10).values)
    out["slq_nodes"] = curv.density(n_runs=2, n_steps=8, seed=3).nodes
    out.update(tr_hutch=curv.trace(20, seed=4).value, tr_xtrace=curv.trace(12, "xtrace", seed=4).value,
               tr_exact=curv.trace(method="exact").value)
    d = curv.diagonal(verify=2)
    out["diag_mlp"], out["route_mlp"] = d, d.route
    out["diag_cols"] = curv.diagonal(fast=False, force=True)
    d = net_curv.diagonal(fast=True, verify=2)
    out["diag_fast"], out["routes_fast"] = d, dict(d.routes)
    out["diag_xdiag"] = curv.diagonal("xdiag", n_probes=12, seed=5)
    out["xdiag_op"] = xdiag(curv.operator(), 12, seed=6)[0]
    out["stats"] = curv.layer_stats(top_eig=True, eig_tol=1e-10)[["layer", "r_med", "trace", "top_eig"]]
    return out


def _track(model, run, X, y, steps=4):
    "SGD on the batches (X[t], y[t]) with a Tracker every 2 steps; returns the tracker's rows and whether it wrote."
    from localgeom_nb.track import Tracker
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    data = _batches(*_data())   # all the data on every rank: shard_data=True keeps each rank's batches
    with Tracker(model, nn.CrossEntropyLoss(), data, every=2, run=run, seed=0, top_eig=True, flush_every=1,
                 shard_data=True) as tr:
        for t in range(steps + 1):
            loss = nn.functional.cross_entropy(model(X[t % len(X)]), y[t % len(y)])
            tr.step(t, loss, optimizer=opt)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return tr.df, tr.store.path is not None


def _worker(r, port, tmp, q):
    import torch.distributed as dist
    torch.set_num_threads(1)
    out = {}
    try:
        from datetime import timedelta
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=r, world_size=WORLD,
                                timeout=timedelta(seconds=60))
        import localgeom_nb.diagonal, localgeom_nb.spectrum, localgeom_nb.stats
        from localgeom_nb.operator import Curvature, CurvatureError
        from localgeom_nb.distributed import shard, DistributedError
        from torch.nn.parallel import DistributedDataParallel as DDP
        X, y = _data()
        Xs, ys = shard((X, y))
        out["shard"] = len(ys)
        data = _batches(Xs, ys)
        curv = Curvature(_mlp(), nn.CrossEntropyLoss(), data, device="cpu", progress=True)
        out["progress"] = curv.progress
        net_curv = Curvature(_Net(), nn.CrossEntropyLoss(), data, device="cpu")
        sum_curv = Curvature(_mlp(), nn.CrossEntropyLoss(reduction="sum"), data, device="cpu")
        out.update(_checks(curv, net_curv, sum_curv))
        v = torch.randn(curv.dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        one = Curvature(_mlp(), nn.CrossEntropyLoss(), (Xs, ys), device="cpu")   # one batch a rank: a cached graph
        out["one_batch_hvp"] = [one.hvp_flat(v), one.hvp_flat(v)]
        out["one_batch_diag"] = one.diagonal(verify=2)
        ddp = DDP(_mlp())
        out["ddp_hvp"] = Curvature(ddp, nn.CrossEntropyLoss(), data, device="cpu").hvp_flat(v)
        out["local_hvp"] = Curvature(_mlp(), nn.CrossEntropyLoss(), data, device="cpu", distributed=False).hvp_flat(v)
        class FSDPModule(nn.Module): "Named like torch's FSDP2 mixin"
        try: Curvature(nn.Sequential(_mlp(), FSDPModule()), nn.CrossEntropyLoss(), data, device="cpu")
        except CurvatureError as e: out["fsdp"] = str(e)
        # a DDP training loop: each rank trains on its half of each global batch
        Xt, yt = _train_data()
        half = slice(r * 2, (r + 1) * 2)
        torch.manual_seed(3)
        model = DDP(nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)).double())
        out["track_df"], out["track_wrote"] = _track(model, os.path.join(tmp, "dist-run"), Xt[:, half], yt[:, half])
        # a rank that fails before a record: every rank raises, naming it
        from localgeom_nb.track import Tracker
        tr = Tracker(_mlp(), nn.CrossEntropyLoss(), data, every=1)
        t0 = time.perf_counter()
        try: tr.step(0, "not a loss" if r == 1 else 1.0)
        except DistributedError as e: out["fail_before"] = (str(e), time.perf_counter() - t0)
        # a rank that fails inside a record (between collectives): the other raises at once with its message
        if r == 1:
            def boom(batch): raise ValueError("boom on rank 1")
            tr.curv.batch_loss = boom
        t0 = time.perf_counter()
        try: tr.step(1, 1.0)
        except Exception as e: out["fail_inside"] = (f"{type(e).__name__}: {e}", time.perf_counter() - t0)
    except Exception:
        out["error"] = traceback.format_exc()
    q.put((r, _np(out)))


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    import torch.multiprocessing as mp
    tmp = str(tmp_path_factory.mktemp("dist"))
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    port = _free_port()
    ps = [ctx.Process(target=_worker, args=(r, port, tmp, q)) for r in range(WORLD)]
    for p in ps: p.start()
    res, t0 = {}, time.time()
    try:
        while len(res) < WORLD:
            try: r, o = q.get(timeout=5)
            except Exception:
                if time.time() - t0 > 240: raise TimeoutError(f"ranks did not finish in 240 s (got {sorted(res)})")
                if all(not p.is_alive() for p in ps) and q.empty(): raise RuntimeError("ranks died without a result")
                continue
            res[r] = o
    finally:
        for p in ps:
            p.join(10)
            if p.is_alive(): p.kill()
    for r, o in res.items(): assert "error" not in o, f"rank {r}:\n{o['error']}"
    return res, tmp


@pytest.fixture(scope="module")
def single(ranks, tmp_path_factory):
    "The same checks in this process, on the concatenated data."
    import localgeom_nb.diagonal, localgeom_nb.spectrum, localgeom_nb.stats
    from localgeom_nb.operator import Curvature
    X, y = _data()
    data = _batches(X, y)[::-1]   # other batches, in another order: only the dataset matters
    curv = Curvature(_mlp(), nn.CrossEntropyLoss(), data, device="cpu")
    out = _np(_checks(curv, Curvature(_Net(), nn.CrossEntropyLoss(), data, device="cpu"),
                      Curvature(_mlp(), nn.CrossEntropyLoss(reduction="sum"), data, device="cpu")))
    Xt, yt = _train_data()
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    out["track_df"], _ = _track(model, str(tmp_path_factory.mktemp("single") / "run"), Xt, yt)
    return out


def _close(a, b, tol=1e-10, what=""):
    if isinstance(b, dict):
        assert a.keys() == b.keys(), what
        for k in b: _close(a[k], b[k], tol, f"{what}[{k}]")
        return
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    err = np.abs(a - b).max() if a.size else 0.
    assert err <= tol * max(1., np.abs(b).max() if b.size else 0.), f"{what}: max difference {err:.3g}"


NUMBERS = ["loss", "hvp", "hvp_batch", "hvp_layer", "sum_hvp", "sum_loss", "top3", "top3_vec", "top1_layer",
           "slq_nodes", "tr_hutch", "tr_xtrace", "tr_exact", "diag_mlp", "diag_cols", "diag_fast", "diag_xdiag", "xdiag_op"]


def test_shards_are_uneven(ranks):
    res, _ = ranks
    assert [res[r]["shard"] for r in range(WORLD)] == [6, 7]


@pytest.mark.parametrize("key", NUMBERS)
def test_equals_one_process(ranks, single, key):
    res, _ = ranks
    for r in range(WORLD): _close(res[r][key], single[key], 1e-10, f"rank {r} {key}")


def test_ranks_agree_bitwise(ranks):
    res, _ = ranks
    for key in NUMBERS: _close(res[1][key], res[0][key], 0., key)


def test_routes(ranks, single):
    res, _ = ranks
    for r in range(WORLD):
        assert res[r]["route_mlp"] == "mlp" == single["route_mlp"]
        assert res[r]["routes_fast"] == {"fc1": "fast", "fc2": "fast"} == single["routes_fast"]


def test_layer_stats(ranks, single):
    res, _ = ranks
    for r in range(WORLD):
        a, b = res[r]["stats"], single["stats"]
        assert list(a["layer"]) == list(b["layer"])
        _close(a[["r_med", "trace", "top_eig"]].to_numpy(), b[["r_med", "trace", "top_eig"]].to_numpy(), 1e-9, "stats")


def test_sum_reduction_is_the_sum_over_ranks(ranks, single):
    res, _ = ranks
    assert abs(res[0]["sum_loss"] - single["sum_loss"]) <= 1e-10 * abs(single["sum_loss"])


def test_ddp_model_gives_the_global_product(ranks, single):
    res, _ = ranks
    for r in range(WORLD):
        _close(res[r]["ddp_hvp"], single["hvp"], 1e-10, "ddp")
        assert np.abs(res[r]["local_hvp"] - single["hvp"]).max() > 1e-6   # distributed=False: this shard only


def test_one_batch_per_rank(ranks, single):
    "A single batch on each rank caches its graph: the cached product is weighted by the rank's share too."
    res, _ = ranks
    for r in range(WORLD):
        for h in res[r]["one_batch_hvp"]: _close(h, single["hvp"], 1e-10, "one batch")
        _close(res[r]["one_batch_diag"], single["diag_cols"], 1e-10, "one batch diag")


def test_fsdp_refused(ranks):
    res, _ = ranks
    assert "the model is sharded" in res[0]["fsdp"] and "plain model" in res[0]["fsdp"]


def test_progress_from_rank0_only(ranks):
    res, _ = ranks
    assert (res[0]["progress"], res[1]["progress"]) == (True, False)


def test_tracker_in_ddp_loop_writes_one_run(ranks, single):
    res, tmp = ranks
    assert res[0]["track_wrote"] and not res[1]["track_wrote"]
    from localgeom_nb.track import load_runs
    disk = load_runs(os.path.join(tmp, "dist-run"))
    assert sorted(os.listdir(tmp)) == ["dist-run"]
    key = ["step", "layer", "stat"]
    def tidy(df): return df[df.stat != "track_seconds"].sort_values(key).reset_index(drop=True)
    a, b = tidy(disk), tidy(single["track_df"])
    assert a[key].equals(b[key]) and sorted(set(a.step)) == [0, 2, 4]
    _close(a["value"].to_numpy(), b["value"].to_numpy(), 1e-9, "tracked values")
    _close(a["loss"].to_numpy(), b["loss"].to_numpy(), 1e-10, "tracked loss")
    _close(res[1]["track_df"].pipe(tidy)["value"].to_numpy(), a["value"].to_numpy(), 0., "rank 1 = rank 0")


def test_failing_rank_raises_everywhere(ranks):
    res, _ = ranks
    for r in range(WORLD):
        msg, secs = res[r]["fail_before"]
        assert "step 0 failed on rank 1: ValueError" in msg and secs < 20, (r, msg)
    msg, secs = res[0]["fail_inside"]
    assert "DistributedError" in msg and "rank 1: ValueError: boom on rank 1" in msg and secs < 20, msg
    assert "boom on rank 1" in res[1]["fail_inside"][0]
