"Packaging smoke tests: version, wheel and sdist contents, console scripts, README generated from nbs/index.ipynb."
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
    from localgeom_nb.docs import write_readme
    readme = (ROOT/'README.md').read_text(encoding='utf-8')
    assert readme == write_readme(ROOT/'nbs'/'index.ipynb'), \
        'README.md differs from nbs/index.ipynb: edit the notebook, then run `localgeom-docs --readme`'


def test_readme_opens_with_setup_commands_then_main_job():
    blocks = re.findall(r'^```[a-z]*\n(.*?)^```', (ROOT/'README.md').read_text(encoding='utf-8'), re.M | re.S)
    commands = [l.strip() for b in blocks for l in b.splitlines() if l.strip() and not l.strip().startswith('#')]
    assert commands[:3] == ['pip install -e ".[dev]"', 'make test',
                            'localgeom compare --task digits-mlp --optimizers sgd,adam --steps 300 --seeds 3 --out runs/demo'], commands[:3]
    assert (ROOT/'README.md').read_text().lstrip().startswith('# '), 'README starts with its title'
