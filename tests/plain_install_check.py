"""Smoke check of a plain `pip install .` (no extras), run by .ci/run with the python of a fresh venv:
every module imports, `Curvature(...).layer_stats()` on a tiny model matches the dense float64 Hessian, and the
console script answers `--help` without importing torch. Not collected by pytest (no `test_` prefix)."""
import importlib, pkgutil, subprocess, sys
from pathlib import Path

import localgeom_nb
here = Path(localgeom_nb.__file__).resolve().parent
assert "site-packages" in here.parts, f"localgeom_nb was imported from {here}, not from the installed package"
mods = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))
for m in mods: importlib.import_module(f"localgeom_nb.{m}")   # every runtime import must be a declared requirement
print(f"localgeom_nb {localgeom_nb.__version__} from {here}: imported {', '.join(mods)}")
assert "docs" not in mods, "the docs site builder is a developer tool (tools/docs_site.py), not a module of the package"
assert not (Path(sys.executable).parent/"localgeom-docs").exists(), "a localgeom-docs console script was installed"

import torch, torch.nn as nn, torch.nn.functional as F
assert torch.version.cuda is None, f"pip replaced the CPU torch by {torch.__version__}: a requirement pulled another torch"
from localgeom_nb.oracle import dense_hessian
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
X, y = torch.randn(16, 3, dtype=torch.float64), torch.randint(0, 2, (16,))
st = localgeom_nb.Curvature(model, F.cross_entropy, (X, y), device="cpu", progress=False).layer_stats()
H = dense_hessian(model, F.cross_entropy, (X, y))
d = H.diagonal().abs()
assert len(d) == sum(p.numel() for p in model.parameters()), (H.shape, [p.shape for p in model.parameters()])
d0 = d[:sum(p.numel() for p in model[0].parameters())]
got = float(st.loc[st["layer"] == "0", "r_med"].iloc[0])
want = float(d0.max() / d0.sort().values[(len(d0) - 1) // 2])   # the lower median, as `r_med` defines it
assert abs(got - want) <= 1e-9 * want, (got, want)
print(f"layer_stats: {len(st)} rows, r_med of layer 0 = {got:.6g} (dense Hessian: {want:.6g})")

exe = Path(sys.executable).parent/"localgeom"   # the venv's console script (its bin/ need not be on PATH)
assert exe.is_file(), f"no console script {exe}: settings.ini console_scripts did not install"
r = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120)
assert r.returncode == 0 and "compare" in r.stdout, r.stdout + r.stderr
probe = "import sys; from localgeom_nb.cli import main\ntry: main(['--help'])\nexcept SystemExit: pass\n" \
        "bad = sorted(m for m in ('torch', 'pandas', 'altair') if m in sys.modules); assert not bad, bad"
r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
assert r.returncode == 0, r.stderr
print("localgeom --help: ok, imports neither torch nor pandas nor altair")
