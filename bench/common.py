"Shared set-up for the bench scripts: the reference case and a timer."
import os, time, statistics, torch, torch.nn as nn

def reference_case(train_steps=200, seed=0):
    "The tanh MLP 64-128-128-10 on sklearn digits (1,797 samples, full batch, float32), briefly trained with Adam."
    from localgeom_nb.data import digits
    from localgeom_nb.models import MLP
    torch.manual_seed(seed)
    X, y = digits()
    model = MLP(64, (128, 128), 10, act="tanh", seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(train_steps):
        opt.zero_grad(); nn.functional.cross_entropy(model(X), y).backward(); opt.step()
    return model.eval(), nn.CrossEntropyLoss(), (X, y)

def timeit(f, repeats=5, warmup=1):
    "Median wall time of `f()` over `repeats` runs, and its last result."
    for _ in range(warmup): out = f()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter(); out = f(); ts.append(time.perf_counter() - t0)
    return statistics.median(ts), out

def header(title):
    print(f"\n## {title}\n(torch {torch.__version__}, {torch.get_num_threads()} threads, CPU={os.cpu_count()})\n")

def table(rows, cols):
    "Print rows (dicts) as a markdown table."
    print("| " + " | ".join(cols) + " |"); print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(f"{r[c]:.3g}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in cols) + " |")
