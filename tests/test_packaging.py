"""Packaging smoke tests: version, wheel and sdist contents, console scripts, README generated from nbs/index.ipynb, and
the developer tools (`tools/`: the docs site builder) kept out of the package."""
import configparser, importlib.util, re, shutil, subprocess, sys, tarfile, zipfile
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
CFG = configparser.ConfigParser(delimiters=['='])
CFG.read(ROOT/'settings.ini', encoding='utf-8')
CFG = CFG['DEFAULT']
SCRIPTS = dict(s.split('=') for s in CFG.get('console_scripts', '').split())


def test_import_and_version():
    import localgeom_nb
    assert localgeom_nb.__version__ == CFG['version'], (localgeom_nb.__version__, CFG['version'])


@pytest.fixture(scope='module')
def dists(tmp_path_factory):
    "sdist, then a wheel built from that sdist (as pip would), without network (no build isolation)."
    out = tmp_path_factory.mktemp('dist')
    r = subprocess.run([sys.executable, '-m', 'build', '--no-isolation', '--outdir', str(out), str(ROOT)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    sdist, = out.glob('*.tar.gz'); wheel, = out.glob('*.whl')
    return sdist, wheel


def test_wheel_has_modules_and_no_notebooks(dists):
    _, wheel = dists
    names = zipfile.ZipFile(wheel).namelist()
    mods = {p.relative_to(ROOT).as_posix() for p in (ROOT/CFG['lib_path']).glob('*.py')}
    assert mods and mods <= set(names), sorted(mods - set(names))
    assert not [n for n in names if n.endswith('.ipynb')], 'the wheel must not ship notebooks'
    meta = next(n for n in names if n.endswith('.dist-info/entry_points.txt'))
    eps = zipfile.ZipFile(wheel).read(meta).decode()
    for name, target in SCRIPTS.items(): assert f'{name} = {target}' in eps, eps


def test_sdist_has_metadata_files(dists):
    sdist, _ = dists
    names = {n.split('/', 1)[1] for n in tarfile.open(sdist).getnames() if '/' in n}
    for f in ('settings.ini', 'setup.py', 'README.md', 'LICENSE'): assert f in names, f


def test_docs_builder_is_not_shipped(dists):
    "The docs site builder is a developer tool in `tools/`: not a module of the package, not a console script."
    sdist, wheel = dists
    assert (ROOT/'tools'/'docs_site.py').exists()
    names = zipfile.ZipFile(wheel).namelist()
    assert f"{CFG['lib_path']}/docs.py" not in names, 'the wheel still ships the docs builder as a module'
    assert not [n for n in names if n.startswith('tools/') or '/tools/' in n], 'the wheel ships tools/'
    meta = next(n for n in names if n.endswith('.dist-info/entry_points.txt'))
    assert 'localgeom-docs' not in zipfile.ZipFile(wheel).read(meta).decode()
    src = [n.split('/', 1)[1] for n in tarfile.open(sdist).getnames() if '/' in n]
    assert not [n for n in src if n.startswith('tools/')], 'the sdist ships tools/ (MANIFEST.in?)'
    assert f"{CFG['lib_path']}/docs.py" not in src
    assert 'localgeom-docs' not in CFG.get('console_scripts', '')


def test_installed_package_has_no_docs_builder():
    "Neither `localgeom_nb.docs` nor a `localgeom-docs` script in this environment (a stale one: reinstall)."
    from importlib import metadata
    assert importlib.util.find_spec(f"{CFG['lib_name']}.docs") is None, f"{CFG['lib_name']}.docs is still importable"
    eps = {e.name for e in metadata.entry_points(group='console_scripts')
           if e.value.split(':')[0].split('.')[0] == CFG['lib_name']}
    assert 'localgeom-docs' not in eps, 'a stale `localgeom-docs` entry point: run pip install -e ".[dev]" again'


@pytest.mark.parametrize('script', sorted(SCRIPTS))
def test_console_script_help(script):
    module = SCRIPTS[script].split(':')[0]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f'{module} does not exist yet (its notebook has not been exported), so `{script}` cannot run')
    exe = shutil.which(script)
    assert exe, f'`{script}` is not on PATH: run `pip install -e ".[dev]"` (console scripts come from settings.ini)'
    r = subprocess.run([exe, '--help'], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'usage' in r.stdout.lower(), r.stdout


def test_readme_is_generated_from_index():
    spec = importlib.util.spec_from_file_location('_docs_site', ROOT/'tools'/'docs_site.py')
    ds = importlib.util.module_from_spec(spec); spec.loader.exec_module(ds)
    readme = (ROOT/'README.md').read_text(encoding='utf-8')
    assert readme == ds.write_readme(ROOT/'nbs'/'index.ipynb'), \
        'README.md differs from nbs/index.ipynb: edit the notebook, then run `make readme`'


def test_readme_opens_with_setup_commands_then_main_job():
    blocks = re.findall(r'^```[a-z]*\n(.*?)^```', (ROOT/'README.md').read_text(encoding='utf-8'), re.M | re.S)
    commands = [l.strip() for b in blocks for l in b.splitlines() if l.strip() and not l.strip().startswith('#')]
    assert commands[:3] == ['pip install -e ".[dev]"', 'make test',
                            'localgeom compare --task digits-mlp --optimizers sgd,adam --steps 300 --seeds 3 --out runs/demo'], commands[:3]
    assert (ROOT/'README.md').read_text().lstrip().startswith('# '), 'README starts with its title'


def _norm(name:str)->str: return re.sub(r'[-_.]+', '-', name).lower()

def _req_names(key:str)->set:
    return {_norm(re.split(r'[<>=!~;\[ ]', r, maxsplit=1)[0]) for r in CFG.get(key, '').split() if r}

def _closure(names:set)->set:
    "`names` and every distribution they depend on (installed metadata), transitively."
    from importlib import metadata
    seen, todo = set(), list(names)
    while todo:
        n = todo.pop()
        if n in seen: continue
        seen.add(n)
        try: reqs = metadata.requires(n) or []
        except metadata.PackageNotFoundError: continue
        todo += [_norm(re.split(r'[<>=!~;\[ (]', r, maxsplit=1)[0]) for r in reqs if 'extra ==' not in r]
    return seen

def _imports(path:Path)->list:
    "(top-level module imported, at module level?) for every absolute import in `path`."
    import ast
    tree, out = ast.parse(path.read_text(encoding='utf-8')), []
    top = {id(n) for n in tree.body} | {id(n) for t in tree.body if isinstance(t, ast.Try) for n in t.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import): mods = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level: mods = [node.module]
        else: continue
        out += [(m.split('.')[0], id(node) in top) for m in mods]
    return out


def test_every_import_is_a_declared_requirement():
    """Module-level imports of the package must be runtime `requirements` (a plain `pip install` has them); imports inside
    functions may also come from the dev extra (or what it pulls in), or be optional readers of the user's data
    (`torchvision`, `datasets`: imported on use, with an error naming the package when it is missing)."""
    from importlib import metadata
    dists = {m: {_norm(d) for d in ds} for m, ds in metadata.packages_distributions().items()}
    runtime, dev = _req_names('requirements'), _closure(_req_names('dev_requirements') | _req_names('pyhessian_requirements'))
    optional = {'torchvision', 'datasets'}
    bad = []
    for f in sorted((ROOT/CFG['lib_path']).glob('*.py')):
        for mod, at_top in _imports(f):
            if mod in sys.stdlib_module_names or mod == CFG['lib_name'] or mod == '__future__': continue
            have = dists.get(mod, {_norm(mod)})
            if at_top and not have & runtime: bad.append(f"{f.name}: `import {mod}` at module level, not in requirements")
            elif not at_top and not have & (runtime | dev) and mod not in optional:
                bad.append(f"{f.name}: `import {mod}` (lazy) is in neither requirements nor dev_requirements")
    assert not bad, "\n".join(bad)


def test_tools_imports_are_dev_requirements():
    "The developer tools (`tools/*.py`, e.g. the docs site builder) run with the dev extra: it must declare what they import."
    from importlib import metadata
    dists = {m: {_norm(d) for d in ds} for m, ds in metadata.packages_distributions().items()}
    have_all = _req_names('requirements') | _closure(_req_names('dev_requirements'))
    tools = sorted((ROOT/'tools').glob('*.py'))
    assert tools, 'no tools/*.py'
    bad = [f"tools/{f.name}: `import {mod}` is in neither requirements nor dev_requirements"
           for f in tools for mod, _ in _imports(f)
           if mod not in sys.stdlib_module_names and mod not in {CFG['lib_name'], '__future__'} | {t.stem for t in tools}
           and not dists.get(mod, {_norm(mod)}) & have_all]
    assert not bad, "\n".join(bad)


def test_fastcore_pins_agree():
    "The runtime fastcore range admits the dev pin (nbdev 2.4.14 needs fastcore 1.x)."
    from packaging.requirements import Requirement
    run = next(Requirement(r) for r in CFG['requirements'].split() if r.startswith('fastcore'))
    dev = next(Requirement(r) for r in CFG['dev_requirements'].split() if r.startswith('fastcore'))
    pinned = next(iter(dev.specifier)).version
    assert run.specifier.contains(pinned), (str(run), str(dev))


def test_top_level_curvature_has_every_patched_method():
    "`lg.Curvature` from the lazy top level carries the methods every module patches onto it (no import-order surprise)."
    import ast
    names = []
    for f in sorted((ROOT/CFG['lib_path']).glob('*.py')):
        for node in ast.walk(ast.parse(f.read_text(encoding='utf-8'))):
            if isinstance(node, ast.FunctionDef) and node.args.args and any(
                    getattr(d, 'id', getattr(getattr(d, 'func', None), 'id', None)) == 'patch' for d in node.decorator_list):
                ann = node.args.args[0].annotation
                if isinstance(ann, ast.Name) and ann.id == 'Curvature': names.append(node.name)
    assert 'layer_stats' in names and 'preconditioned' in names, names
    probe = f"import localgeom_nb as lg\nC = lg.Curvature\nprint([n for n in {names!r} if not hasattr(C, n)])"
    r = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == '[]', r.stdout
