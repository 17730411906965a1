"""Each module of `localgeom_nb` imported alone and used: a module imports what it uses (a method patched onto
`Curvature` by another module is there only if that module is imported).

One fresh interpreter (`sys.executable -c`) imports the third-party libraries (torch, pandas, ...) once, and no
module of `localgeom_nb`; it then forks one child per module, four at a time, and each child imports its module alone
and uses it. (An interpreter per module would pay the import of torch each time: about two minutes on a busy machine.)"""
import json, os, pkgutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1",
       "PYTHONWARNINGS": "ignore"}
MODULES = sorted(m.name for m in pkgutil.iter_modules([str(ROOT / "localgeom_nb")]) if not m.name.startswith("_"))

# a tiny curvature problem, built from the module under test and torch only
TINY = """
import torch, torch.nn as nn, torch.nn.functional as F
torch.manual_seed(0)
net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
batch = (torch.randn(5, 3), torch.randint(0, 2, (5,)))
def tiny(): return Curvature(net, F.cross_entropy, batch, progress=False, device="cpu")
"""

# module -> code that imports only that module (and torch) and uses it; the others are imported alone
USE = {
    "oracle": "from localgeom_nb.oracle import tiny_problems\nassert tiny_problems()",
    "operator": "from localgeom_nb.operator import Curvature\n" + TINY + "assert tiny().hvp_flat(torch.ones(26)).shape == (26,)",
    "distributed": "from localgeom_nb.distributed import is_rank0\nassert is_rank0()",
    "spectrum": "from localgeom_nb.operator import Curvature\nfrom localgeom_nb.spectrum import lanczos\n" + TINY
                + "assert tiny().eigenvalues(1).values.shape == (1,)",
    "estimators": "from localgeom_nb.estimators import hutchinson_trace, xdiag, DiagResult\n"
                  "from localgeom_nb.operator import DenseOperator\nimport torch\n"
                  "assert abs(hutchinson_trace(DenseOperator(torch.eye(3, dtype=torch.float64)), 4).value - 3) < 1e-12",
    "diagonal": "from localgeom_nb.operator import Curvature\nimport localgeom_nb.diagonal\n" + TINY
                + "d = tiny().diagonal()\nassert d.route == 'mlp' and set(d) == {'0.weight', '0.bias', '2.weight', '2.bias'}",
    "mlp_diag": "from localgeom_nb.operator import Curvature\nfrom localgeom_nb.mlp_diag import mlp_exact_diag\n" + TINY
                + "assert mlp_exact_diag(tiny()).route == 'mlp'",
    "stats": "from localgeom_nb.operator import Curvature\nfrom localgeom_nb.stats import *\n" + TINY
             + "df = tiny().layer_stats(top_eig=True)\nassert len(df) == 3 and df.top_eig.notna().all()",
    "precond": "from localgeom_nb.operator import Curvature\nfrom localgeom_nb.precond import precond_diagonal\n" + TINY
               + "opt = torch.optim.Adam(net.parameters())\nF.cross_entropy(net(batch[0]), batch[1]).backward()\n"
                 "opt.step()\nassert len(precond_diagonal(tiny(), opt)) == 4",
}


DRIVER = r"""
import importlib, json, os, sys, traceback
for lib in ("torch", "torch.nn", "torch.nn.functional", "numpy", "pandas", "scipy.stats", "fastcore.basics",
            "fastcore.test", "tqdm.auto", "altair", "pyarrow", "pyarrow.parquet"):
    try: importlib.import_module(lib)
    except ImportError: pass
assert not [m for m in sys.modules if m.startswith("localgeom_nb")], "the driver must not import localgeom_nb"
jobs, out, live = json.loads(sys.argv[1]), {}, {}
def reap():
    pid, status = os.wait()
    m = live.pop(pid)
    out[m] = (os.waitstatus_to_exitcode(status), open(f"{sys.argv[2]}/{m}.err").read()[-3000:])
for m, code in jobs.items():
    if len(live) >= 4: reap()
    pid = os.fork()
    if pid == 0:
        fd = os.open(f"{sys.argv[2]}/{m}.err", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 2)
        try: exec(compile(code, m, "exec"), {"__name__": "__main__"})
        except BaseException: traceback.print_exc(); sys.stderr.flush(); os._exit(1)
        sys.stderr.flush(); os._exit(0)
    live[pid] = m
while live: reap()
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    "module -> (exit code, the end of its stderr), from the forked children of one fresh interpreter."
    jobs = {m: USE.get(m, f"import localgeom_nb.{m}") for m in MODULES}
    tmp = tmp_path_factory.mktemp("imports")
    r = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(jobs), str(tmp)], cwd=ROOT, env=ENV,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_every_module_is_checked():
    assert {"operator", "estimators", "stats", "track"} <= set(MODULES), MODULES
    assert set(USE) - set(MODULES) <= {"diagonal", "mlp_diag"}, set(USE) - set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_module_alone(results, module):
    code, err = results[module]
    assert code == 0, f"{module}:\n{err}"
