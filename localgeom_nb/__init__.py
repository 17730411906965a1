__version__ = "0.1.0"
# Local geometry of neural-network losses along training trajectories.
# The one hand-written module: it re-exports the public API of the exported modules, lazily (PEP 562), so that
# `import localgeom_nb.plots` or the CLI's `--help` do not pay for importing torch.
import importlib as _il, sys as _sys

# modules that patch methods onto `Curvature` are imported together, so `lg.Curvature(...)` has all its methods
_CORE = ["oracle", "operator", "spectrum", "estimators", "mlp_diag", "diagonal", "piecewise", "precond", "stats", "data",
         "models", "store", "worker", "track", "experiments"]
_LAZY = ["plots", "verdict", "session", "explorer", "cli", "hf", "callbacks"]

def _index():
    "Public name -> submodule, from nbdev's symbol index."
    try: from ._modidx import d
    except Exception: return {}  # mid-export: fall back to searching the modules
    out = {}
    for mod, syms in d["syms"].items():
        short = mod.rsplit(".", 1)[-1]
        for s in syms:
            rest = s[len(mod) + 1:]
            if "." not in rest and not rest.startswith("_"): out.setdefault(rest, short)
    return out

_NAMES = _index()
__all__ = sorted(_NAMES)

def _load(short):
    try: return _il.import_module(f".{short}", __name__)
    except ModuleNotFoundError as e:
        if e.name == f"{__name__}.{short}": return None
        raise

def __getattr__(name):
    sub = _sys.modules.get(f"{__name__}.{name}")
    if sub is not None: return sub      # a submodule still importing (`import localgeom_nb.x as x` asks for it here)
    short = _NAMES.get(name) or next((m for m in _CORE + _LAZY if name in getattr(_load(m), "__all__", ())), None)
    if short is None: raise AttributeError(f"module 'localgeom_nb' has no attribute {name!r}")
    if short in _CORE:
        for m in _CORE: _load(m)
    mod = _load(short)
    val = getattr(mod, name)
    globals()[name] = val
    return val

def __dir__(): return sorted(set(globals()) | set(__all__))
