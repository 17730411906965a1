"""Build the documentation site in `_site/` from the notebooks without Quarto, and `README.md` from `index.ipynb`.

A developer tool, not part of the installed package: run it from a checkout with the `dev` extra installed
(`pip install -e ".[dev]"`, which brings nbdev, nbclient, mkdocs and mkdocs-material).

    python tools/docs_site.py                      # full build (a few minutes on 2 cores); `make docs` runs this
    python tools/docs_site.py --only 09_plots      # rebuild some pages
    python tools/docs_site.py --fresh              # execute every notebook, even unchanged ones
    python tools/docs_site.py --keep-going         # build every page even when a notebook fails (still exits 1)
    python tools/docs_site.py --readme             # regenerate README.md from nbs/index.ipynb (`make readme`)
    python tools/docs_site.py --check-readme       # exit 1 if README.md differs from nbs/index.ipynb
    python tools/docs_site.py --write-outputs      # also save the executed notebooks into nbs/ (deploy workflow only)

Quarto can't be installed on our machines, so `nbdev_docs` can't run here (it still runs on GitHub Actions, see
`.github/workflows/deploy.yaml`, which executes the notebooks with `--write-outputs` and then publishes nbdev's usual
Quarto site). This builds an equivalent static site offline:

1. nbdev writes `_quarto.yml`, `nbdev.yml`, `sidebar.yml` and `_modidx.py` as `nbdev_docs` would;
2. each notebook is **executed** with nbclient (widget state stored, `IN_TEST=1` and `LOCALGEOM_DOCS=1` set,
   altair switched to SVG), so pages show what the current code produces; a notebook whose cells and library
   modules are unchanged since the last build (`build/docs/executed/`) reuses that build's outputs;
3. nbdev's own processors turn them into `_proc/`: `#| hide` cells hidden, `show_doc` added and rendered,
   directives stripped;
4. each processed notebook becomes a markdown page in `build/docs/docs/` (code in fences, outputs as inline HTML and
   SVG), plus `api.md` (an index by notebook, then every exported function and class with its signature and docments);
5. [mkdocs-material](https://squidfunk.github.io/mkdocs-material/) renders `_site/`. The theme gives, with no code of
   ours, what nbdev's Quarto site has: search (lunr, in the browser), an "On this page" table of contents,
   previous/next links, the repository in the header and copy buttons on code. Web fonts are off (`font: false`) and
   the header's repository link is a plain link (material's own asks GitHub's API for stars, a request to another
   host). The widget renderer, require.js and MathJax come from npm packages (`STATIC_PKGS`), fetched at build time
   into a user cache (never committed) and served from `_site/static`, so a page asks nothing of any other host.

The built site is tested by `tests/test_docs_site.py` (every page opened in headless chromium, every internal link and
anchor crawled) and this module's functions by `tests/test_docs_builder.py` (including a whole build of a one-notebook
project). It imports the library only to document it (`undocumented`); the library never imports it.
"""

__all__ = ['STATIC_PKGS', 'SKIP_TAG', 'QUIET_KERNEL', 'DocsError', 'cell_directives', 'strip_directives', 'skip_reason',
           'clean_quarto', 'page_name', 'nb_order', 'plain_title', 'nb_title', 'nb_module', 'fetch_static',
           'kernel_env', 'execute_nb', 'svg_charts', 'inline_svg', 'prune_widget_state', 'prep_cells', 'slugify',
           'clean_signature', 'output_md', 'cell_md', 'md_links', 'md_anchors', 'unlink_missing', 'page_md',
           'mkdocs_yml', 'run_mkdocs', 'api_md', 'undocumented', 'exec_key', 'build_site', 'md_name', 'write_readme']

import os, re, sys, json, html, shutil, tarfile, tempfile, subprocess, time, argparse, fnmatch
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor

# The docs build has its own error class so that it stays importable without torch.
class DocsError(RuntimeError):
    "The docs build can't go on; the message names the problem and the fix."

STATIC_PKGS = {'@jupyter-widgets/html-manager': '1.0.15', 'requirejs': '2.3.8', 'mathjax': '3.2.2'}
SKIP_TAG = 'lg-docs-skip'

# Both nbdev directives (`#| export`, `#| slow`) and Quarto options (`#| echo: false`) sit at the top of a cell.
_re_dir = re.compile(r'^\s*#\s*\|\s*(.*?)\s*$')

def cell_directives(src:str, # a code cell's source
                   )->dict:
    "Leading `#| name args` lines of `src` as a dict `name -> args` (Quarto's `name: value` keeps its colon)."
    res = {}
    for line in src.splitlines():
        if not line.strip(): continue
        m = _re_dir.match(line)
        if not m: break
        name, _, args = m.group(1).partition(' ')
        if name: res[name] = args.strip()
    return res

def strip_directives(src:str, # a code cell's source
                    )->str:
    "`src` without its leading `#|` directive lines."
    lines = src.splitlines()
    while lines and (not lines[0].strip() or _re_dir.match(lines[0])): lines.pop(0)
    return '\n'.join(lines)

# The docs run the same cells as `nbdev_test`: `#| slow` and `#| gpu` cells only when asked, `#| eval: false` never.
def skip_reason(src:str, # a code cell's source
                tst_flags=('notest','slow','gpu'), # flags that mark cells skipped unless asked for
                flags=(), # flags asked for (like `nbdev_test --flags`)
               )->str|None:
    "Why the docs build does not execute a cell with source `src`, or None when it does."
    d = cell_directives(src)
    if d.get('eval:', '').lower() == 'false': return 'eval: false'
    for f in tst_flags:
        if f in d and f not in flags: return f'#| {f}'
    if 'nbdev_' + 'export()' in src: return 'nbdev_export'  # split: nbdev skips cells holding the call

# Quarto reads `{target="_blank"}`, `::: {.callout-note}` and `#| echo: false`; nbconvert would print them verbatim.
_re_attrs = re.compile(r'(?<=[\])\w*_`\x00])\{(?:target|style|\.|#|fig-|width|height)[^{}\n]*\}')
_re_fence = re.compile(r'^[ \t]*:::+.*$\n?', re.MULTILINE)
_re_dirline = re.compile(r'^[ \t]*#\|.*$\n?', re.MULTILINE)
_re_fmline = re.compile(r'\A\s*---\s*\n.*?\n---\s*\n', re.DOTALL)

def clean_quarto(md:str, # markdown text from a cell or a `show_doc` output
                )->str:
    "`md` without the Quarto-only syntax that would show as text: attribute blocks, `:::` fences, `#|` lines, frontmatter."
    code = []
    def _hold(m): code.append(m.group(0)); return f'\x00{len(code)-1}\x00'
    md = re.sub(r'^```.*?^```[^\n]*$|`[^`\n]+`', _hold, _re_fmline.sub('', md), flags=re.MULTILINE|re.DOTALL)
    for r in (_re_attrs, _re_fence, _re_dirline): md = r.sub('', md)   # code blocks and spans are left alone
    return re.sub(r'\x00(\d+)\x00', lambda m: code[int(m.group(1))], md)

def page_name(nb_path:Path, # a notebook path relative to the notebooks folder
             )->str:
    "The HTML page nbdev (and Quarto) make from `nb_path`: number prefix dropped, lower case."
    from nbdev.doclinks import _nbpath2html
    return _nbpath2html(Path(nb_path)).as_posix()

def _sidebar_files(items):
    for o in items:
        if isinstance(o, str): yield o
        elif isinstance(o, dict):
            if 'href' in o: yield o['href']
            yield from _sidebar_files(o.get('contents', []))

def nb_order(nbs_path:Path, # the notebooks folder (`nbs_path` in settings.ini)
            )->list:
    "Notebooks (relative paths) in the order of the sidebar that nbdev writes to `sidebar.yml`."
    import yaml
    from nbdev.quarto import nbdev_sidebar
    nbs_path = Path(nbs_path)
    nbdev_sidebar.__wrapped__(path=nbs_path, force=True)
    side = yaml.safe_load((nbs_path/'sidebar.yml').read_text())
    files = _sidebar_files(side['website']['sidebar']['contents'])
    return [Path(f) for f in files if f.endswith('.ipynb')]

def _nb_json(p): return json.loads(Path(p).read_text(encoding='utf-8'))
def _src(c): return ''.join(c['source']) if isinstance(c.get('source'), list) else (c.get('source') or '')

def plain_title(md:str, # a short piece of markdown, e.g. a heading
         )->str:
    "`md` as plain text: no backticks or bold/italic stars."
    return re.sub(r'`|\*{1,2}', '', md).strip()

def nb_title(nb:dict, # notebook JSON
             default:str='', # title when the notebook has no heading
            )->str:
    "The notebook's first heading (nbdev's page title), without markup."
    for c in nb['cells']:
        if c['cell_type'] != 'markdown': continue
        m = re.search(r'^#{1,6}\s+(\S.*?)\s*#*\s*$', _src(c), flags=re.MULTILINE)
        if m: return plain_title(m.group(1))
    return default

def nb_module(nb:dict, # notebook JSON
             )->str|None:
    "The module a notebook exports to (`#| default_exp`), if any."
    for c in nb['cells']:
        if c['cell_type'] == 'code' and 'default_exp' in (d := cell_directives(_src(c))): return d['default_exp'] or None

# The static files are fetched at build time (never committed) and kept in a user cache, so rebuilds need no network.
def _stamp(): return ' '.join(f'{k}@{v}' for k, v in STATIC_PKGS.items()) + ' layout-2'

_keep = {'@jupyter-widgets/html-manager': ('html-manager', r'package/dist/(?!.*\.map$)(?!embed\.js)(?!libembed)(.+)'),
         'requirejs': ('', r'package/(require\.js)$'),
         'mathjax': ('mathjax', r'package/es5/(tex-svg\.js|input/tex/extensions/.+|a11y/.+|ui/.+)$')}

def _unpack(tgz, dest, sub, pattern):
    with tarfile.open(tgz) as tf:
        for m in tf.getmembers():
            mm = re.fullmatch(pattern, m.name)
            if not m.isfile() or not mm or '..' in mm.group(1): continue
            out = dest/sub/mm.group(1)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(tf.extractfile(m).read())

def _place_fonts(stage):
    "The widget bundles look for their icon fonts next to their AMD module ids, under require.js's `baseUrl` (`static/`)."
    for d in (stage/'@jupyter-widgets', stage/'@jupyter-widgets'/'html-manager'/'dist'):
        d.mkdir(parents=True, exist_ok=True)
        for f in (stage/'html-manager').glob('*'):
            if f.suffix in ('.woff2', '.woff', '.ttf', '.eot', '.svg'): shutil.copy2(f, d/f.name)

def _npm_pack(tmp, npm):
    npm = npm or shutil.which('npm')
    if not npm or not shutil.which(npm):
        raise DocsError("npm not found: the docs site serves the widget renderer, require.js and MathJax from npm packages "
                        "(" + ', '.join(f'{k}@{v}' for k, v in STATIC_PKGS.items()) + "). Install Node.js and npm "
                        "(Debian: `apt-get install -y npm`) and build again.")
    specs = [f'{k}@{v}' for k, v in STATIC_PKGS.items()]
    r = subprocess.run([npm, 'pack', '--json', *specs], cwd=tmp, capture_output=True, text=True)
    if r.returncode: raise DocsError(f"`npm pack {' '.join(specs)}` failed (exit {r.returncode}): {r.stderr.strip()[-800:]}\n"
                                     "The docs need these packages from the npm registry; check that npm can reach it.")
    return {o['name']: Path(tmp)/o['filename'] for o in json.loads(r.stdout)}

def fetch_static(dest:Path, # folder to fill, e.g. `_site/static`
                 npm:str=None, # npm executable (default: `npm` on PATH)
                 cache:Path=None, # folder kept between builds (default: `$LOCALGEOM_DOCS_CACHE` or `~/.cache/localgeom_nb`)
                )->Path:
    "Fill `dest` with the widget renderer (`html-manager/embed-amd.js`), `require.js` and MathJax from `STATIC_PKGS` on npm."
    dest = Path(dest)
    if (dest/'VERSIONS').exists() and (dest/'VERSIONS').read_text().strip() == _stamp(): return dest
    cache = Path(cache or os.environ.get('LOCALGEOM_DOCS_CACHE') or Path.home()/'.cache'/'localgeom_nb')/'static'
    if not ((cache/'VERSIONS').exists() and (cache/'VERSIONS').read_text().strip() == _stamp()):
        with tempfile.TemporaryDirectory() as tmp:
            tgzs = _npm_pack(tmp, npm)
            stage = Path(tmp)/'static'
            for name, (sub, pattern) in _keep.items(): _unpack(tgzs[name], stage, sub, pattern)
            _place_fonts(stage)
            (stage/'VERSIONS').write_text(_stamp() + '\n')
            try:
                shutil.rmtree(cache, ignore_errors=True); cache.parent.mkdir(parents=True, exist_ok=True)
                shutil.copytree(stage, cache)
            except OSError: cache = stage   # no writable cache: use this build's copy
            shutil.rmtree(dest, ignore_errors=True); shutil.copytree(cache, dest)
            return dest
    shutil.rmtree(dest, ignore_errors=True); shutil.copytree(cache, dest)
    return dest

_STARTUP = '''
def _lg_docs_setup():
    import sys
    def _svg_charts(*a, **k):
        alt = sys.modules.get('altair')
        if alt is not None and alt.renderers.active != 'svg':
            try: alt.renderers.enable('svg')
            except Exception: pass
    get_ipython().events.register('pre_run_cell', _svg_charts)
try: _lg_docs_setup()
except Exception as e: print('docs_site: kernel set-up failed:', e)
del _lg_docs_setup
'''

def kernel_env(root:Path, # project root (put on PYTHONPATH)
               startup:Path, # file that the kernel runs at start (PYTHONSTARTUP)
              )->dict:
    "Environment for the docs kernels: `IN_TEST=1`, `LOCALGEOM_DOCS=1`, no tqdm bars, altair as SVG, the project importable."
    env = {**os.environ, 'IN_TEST': '1', 'LOCALGEOM_DOCS': '1', 'TQDM_DISABLE': '1', 'PYTHONSTARTUP': str(startup),
           'PYTHONPATH': os.pathsep.join([str(root)] + [p for p in [os.environ.get('PYTHONPATH')] if p])}
    return env

def _with_ids(nb):
    "Give cells without an `id` one (nbformat 4.5 requires them)."
    for i, c in enumerate(nb['cells']): c.setdefault('id', f'lg{i:04d}')
    return nb

def _frontmatter(nb):
    c = nb['cells'][0] if nb['cells'] else None
    if c is None or c['cell_type'] != 'raw': return {}
    import yaml
    m = re.match(r'\A\s*---\s*\n(.*?)\n---\s*', _src(c), re.DOTALL)
    try: return (yaml.safe_load(m.group(1)) or {}) if m else {}
    except Exception: return {}

QUIET_KERNEL = ['--IPKernelApp.log_level=ERROR']  # not 'Kernel is running over TCP without encryption' per notebook

def execute_nb(src:Path, # notebook to run
               dst:Path, # where the executed notebook goes
               env:dict, # kernel environment (see `kernel_env`)
               tst_flags=('notest','slow','gpu'), # flags that mark cells skipped
               flags=(), # flags to run anyway
               timeout:int=600, # seconds per cell
              )->dict:
    "Run `src` in a fresh kernel (cwd: its folder) storing widget state, write it to `dst`; returns timing and counts."
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    import nbformat
    src, dst, t0 = Path(src), Path(dst), time.time()
    nb = _with_ids(nbformat.read(src, as_version=4))
    code = [c for c in nb.cells if c.cell_type == 'code']
    for c in code:
        c.outputs, c.execution_count = [], None
        if skip_reason(c.source, tst_flags, flags): c.metadata.setdefault('tags', []).append(SKIP_TAG)
    n_run = sum(SKIP_TAG not in c.metadata.get('tags', []) for c in code)
    fm = _frontmatter(nb)
    if n_run and not str(fm.get('skip_exec', '')).lower() == 'true':
        client = NotebookClient(nb, timeout=timeout, kernel_name='python3', store_widget_state=True, extra_arguments=QUIET_KERNEL,
                                skip_cells_with_tag=SKIP_TAG, resources={'metadata': {'path': str(src.parent)}})
        try: client.execute(env=env)
        except CellExecutionError as e:
            msg = re.sub(r'\x1b\[[0-9;]*m', '', str(e))
            raise DocsError(f"{src.name}: a cell failed while executing the notebook for the docs "
                            f"(fix the notebook, or mark the cell `#| eval: false`):\n{msg[-3000:]}") from None
    for c in code:
        tags = [t for t in c.metadata.get('tags', []) if t != SKIP_TAG]
        if tags: c.metadata['tags'] = tags
        else: c.metadata.pop('tags', None)
    dst.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dst)
    return {'notebook': src.name, 'cells_run': n_run, 'cells_skipped': len(code) - n_run, 'seconds': round(time.time()-t0, 1)}

_re_vega = re.compile(r'application/vnd\.vega(lite)?\.v\d+\+json')

def svg_charts(outputs:list, # a cell's outputs (nbformat nodes or dicts)
              )->int:
    "Replace vega/vega-lite outputs (which need vega from a CDN) by static SVG made with vl-convert; returns how many."
    n = 0
    for o in outputs:
        data = o.get('data', {})
        key = next((k for k in data if _re_vega.fullmatch(k)), None)
        if key is None or 'image/svg+xml' in data: continue
        import vl_convert as vlc
        spec = data[key] if isinstance(data[key], dict) else json.loads(data[key])
        svg = vlc.vegalite_to_svg(spec) if 'vegalite' in key else vlc.vega_to_svg(spec)
        o['data'] = {'image/svg+xml': svg, 'text/plain': data.get('text/plain', '<chart>')}
        n += 1
    return n

# Vega numbers its clip paths from 1 in every chart, so two inline charts on one page would share ids: `inline_svg`.
_re_svgid = re.compile(r'\bid="([^"]+)"')

def inline_svg(svg:str, # an `image/svg+xml` output
               prefix:str, # unique per output on the page
              )->str:
    "`svg` ready to sit inline in HTML: no XML prolog, and ids (clip paths, gradients) made unique on the page."
    svg = re.sub(r'\A\s*(<\?xml[^>]*>\s*)?(<!DOCTYPE[^>]*>\s*)?', '', svg)
    for i in set(_re_svgid.findall(svg)):
        svg = re.sub(rf'(\bid="|url\(#|href="#){re.escape(i)}(?=[")])', rf'\g<1>{prefix}-{i}', svg)
    return svg

# nbdev's processors gather every widget ever made in their process; a page should carry only its own.
def _model_refs(x):
    return set(re.findall(r'IPY_MODEL_([0-9a-f]{32})', json.dumps(x))) | set(re.findall(r'"model_id": "([0-9a-f]{32})"', json.dumps(x)))

def prune_widget_state(nb:dict, # a processed notebook (JSON)
                      )->int:
    "Keep only the widget models that this notebook's outputs show (and their children); returns how many remain."
    key = 'application/vnd.jupyter.widget-state+json'
    state = nb.get('metadata', {}).get('widgets', {}).get(key, {}).get('state', {})
    todo = {m for c in nb['cells'] for o in c.get('outputs', [])
            for m in _model_refs(o.get('data', {}).get('application/vnd.jupyter.widget-view+json', {}))}
    keep = set()
    while todo:
        m = todo.pop()
        if m in keep or m not in state: continue
        keep.add(m); todo |= _model_refs(state[m])
    if not keep: nb.get('metadata', {}).pop('widgets', None); return 0
    nb['metadata']['widgets'][key]['state'] = {k: v for k, v in state.items() if k in keep}
    return len(keep)

def prep_cells(nb:dict, # a notebook from `_proc/` (JSON)
              )->dict:
    "Apply the Quarto cell options nbconvert ignores (`echo`, `output`, `include`), drop empty cells, clean leftovers."
    cells = []
    for c in nb['cells']:
        if c['cell_type'] == 'raw': continue
        src = _src(c)
        if c['cell_type'] == 'markdown':
            src = clean_quarto(src)
            if not src.strip() or src.strip().startswith('<!-- WARNING'): continue
            c['source'] = src; cells.append(c); continue
        d = cell_directives(src)
        if d.get('include:', '').lower() == 'false': continue
        if d.get('output:', '').lower() == 'false': c['outputs'] = []
        c['source'] = src = strip_directives(src)
        for o in c.get('outputs', []):
            md = o.get('data', {}).get('text/markdown')
            if md is not None: o['data']['text/markdown'] = clean_quarto(''.join(md) if isinstance(md, list) else md)
        svg_charts(c.get('outputs', []))
        for j, o in enumerate(c.get('outputs', [])):
            svg = o.get('data', {}).get('image/svg+xml')
            if svg is not None: o['data']['image/svg+xml'] = inline_svg(''.join(svg) if isinstance(svg, list) else svg, f'c{len(cells)}o{j}')
        if d.get('echo:', '').lower() == 'false' or not src.strip():
            if not c.get('outputs'): continue
            c.setdefault('metadata', {}).setdefault('transient', {})['remove_source'] = True
        cells.append(c)
    nb['cells'] = cells
    return nb

# nbdev links a name to its page plus `#` and the lower-case qualified name (`operator.html#curvature.layer_stats`),
# the id Quarto gives that heading by pandoc's rule. Python-Markdown's default slugs drop the dots
# (`curvaturelayer_stats`), so the site uses pandoc's rule (`run_mkdocs` hands this function to the `toc`
# extension), and every link lands on its heading (`tests/test_docs_site.py` crawls them all).
def slugify(value:str, # a heading's text
            separator:str='-', # what spaces become
           )->str:
    "Heading ids as pandoc (and so Quarto) makes them: lower case, spaces to `-`, punctuation but `_`, `-`, `.` dropped."
    v = re.sub(r'[^\w\s.-]', '', html.unescape(value).strip().lower())
    v = re.sub(r'^[\W\d]+', '', re.sub(r'\s+', separator, v))   # a leading `_` stays: nbdev links `_x` to `#_x`
    return v or 'section'

# `show_doc` prints an argument without annotation whose default is `None` as `loss_fn:NoneType=None`, a class as
# `def Curvature(`, and a source link `#LNone` when it can't find the line; the pages show `loss_fn=None`,
# `class Curvature(` and a plain link.
_re_sig = re.compile(r'(###\s+(?P<name>[\w.]+)\s*\n+```python\n)(?P<sig>.*?\n```)', re.DOTALL)

def clean_signature(md:str, # a `show_doc` output (markdown)
                   )->str:
    "`show_doc` markdown with `class X(` for classes, no `:NoneType` on unannotated arguments, no `#LNone` link, `_` escaped."
    md = re.sub(r'(\]\([^)\s]*?)#LNone\)', r'\1)', md)
    def _sub(m):
        name, sig = m.group('name'), m.group('sig')
        sig = re.sub(r':\s*NoneType(?=\s*[=,)#\n])', '', sig)
        sig = re.sub(r'\[(`[^`\]]+`)\]\([^)\s]*\)', r'\1', sig)   # a link in a code block shows as markdown: keep the name
        if '.' not in name and name[:1].isupper(): sig = re.sub(rf'^def {re.escape(name)}\(', f'class {name}(', sig)
        return f'### {name.replace("_", chr(92) + "_")}\n\n```python\n' + sig   # `__exit__` is a name, not bold `exit`
    return _re_sig.sub(_sub, md)

# Each page is markdown that mkdocs renders: code in fences (so it gets highlighting and a copy button), text outputs
# in `text` fences, HTML, charts (inline SVG) and widget views as raw HTML. Charts are left out of the search index.
def _fence(text, lang=''):
    n = max([3] + [len(t) + 1 for t in re.findall(r'`{3,}', text)])
    return f"{'`'*n}{lang}\n{text.rstrip()}\n{'`'*n}"

def _txt(x): return ''.join(x) if isinstance(x, list) else (x or '')
_re_ansi = re.compile(r'\x1b\[[0-9;]*[A-Za-z]')

def _raw(body, cls, search=True):
    return f'<div class="lg-output {cls}"{"" if search else " data-search-exclude"} markdown="0">\n{body.strip()}\n</div>'

def output_md(o:dict, # one output of a code cell
             )->str:
    "An output as markdown: text in a fence, HTML and SVG as raw HTML, images inline, widgets as their view script."
    t = o.get('output_type')
    if t == 'stream': return _fence(_re_ansi.sub('', _txt(o.get('text'))), 'text')
    if t == 'error': return _fence(_re_ansi.sub('', '\n'.join(o.get('traceback', []))), 'text')
    d = o.get('data', {})
    if 'application/vnd.jupyter.widget-view+json' in d:
        v = json.dumps(d['application/vnd.jupyter.widget-view+json']).replace('</', '<\\/')
        return _raw(f'<script type="application/vnd.jupyter.widget-view+json">{v}</script>', 'lg-widget')
    if 'text/html' in d: return _raw(_txt(d['text/html']), 'lg-html')
    if 'image/svg+xml' in d: return _raw(_txt(d['image/svg+xml']), 'lg-chart', search=False)
    for k in ('image/png', 'image/jpeg', 'image/gif'):
        if k in d: return _raw(f'<img src="data:{k};base64,{_txt(d[k]).strip()}" alt="output">', 'lg-image', search=False)
    if 'text/markdown' in d: return clean_signature(_txt(d['text/markdown']))
    if 'text/latex' in d: return _txt(d['text/latex'])
    if 'text/plain' in d: return _fence(_re_ansi.sub('', _txt(d['text/plain'])), 'text')
    return ''

def cell_md(c:dict, # a cell of a prepared notebook (see `prep_cells`)
           )->str:
    "A cell as markdown: markdown as it is, code in a fence (unless its source is hidden), then its outputs."
    if c['cell_type'] == 'markdown': return _src(c)
    parts = [] if c.get('metadata', {}).get('transient', {}).get('remove_source') else [_fence(_src(c), 'python')]
    parts += [m for o in c.get('outputs', []) if (m := output_md(o))]
    return '\n\n'.join(parts)

def md_links(md:str, # a page's markdown
             pages:dict, # notebook or page file name -> markdown file (e.g. `07_track.ipynb` -> `track.md`)
             site_url:str='', # the published site's URL, made relative
            )->str:
    "Links into the published site made relative, and links to notebooks or pages pointed at their markdown files."
    code = []
    def _hold(m): code.append(m.group(0)); return f'\x00{len(code)-1}\x00'
    md = re.sub(r'^(`{3,}).*?^\1[^\n]*$', _hold, md, flags=re.MULTILINE|re.DOTALL)   # code blocks stay as they are
    if site_url: md = md.replace(site_url.rstrip('/') + '/', '')
    def _sub(m):
        tgt = pages.get(m.group(2))
        return f'{m.group(1)}{tgt}{m.group(3) or ""})' if tgt else m.group(0)
    md = re.sub(r'(\]\()(?![a-z][a-z0-9+.-]*:)([^)#\s]+\.(?:ipynb|html))(#[^)\s]*)?\)', _sub, md)
    return re.sub(r'\x00(\d+)\x00', lambda m: code[int(m.group(1))], md)

# nbdev links every name in backticks that `_modidx.py` knows, private helpers included, but only names with a
# `show_doc` have a heading to land on; Quarto sends the others to the top of the page. Here such a link is left as
# plain code, and a hand-written link with a wrong anchor is kept, for the site test to report.
def md_anchors(md:str, # a markdown page
              )->set:
    "The ids mkdocs gives the headings of `md` (headings inside code fences are not headings)."
    ids, fence = set(), None
    for line in md.splitlines():
        m = re.match(r'^\s*(`{3,}|~{3,})', line)
        if m and (fence is None or m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence)):
            fence = None if fence else m.group(1); continue
        if fence: continue
        h = re.match(r'^#{1,6}\s+(.*?)\s*(\{[^}]*#([\w.:-]+)[^}]*\})?\s*#*\s*$', line)
        if h: ids.add(h.group(3) or slugify(re.sub(r'`|\*|\\(?=[_*`])', '', h.group(1))))
    return ids

def unlink_missing(docs_dir:Path, # the markdown pages
                  )->int:
    "Unlink nbdev's auto-links (`` [`name`](page.md#anchor) ``) to names that have no heading there; returns how many."
    docs_dir, n = Path(docs_dir), 0
    files = {f.relative_to(docs_dir).as_posix(): f for f in docs_dir.rglob('*.md')}
    ids = {k: md_anchors(f.read_text(encoding='utf-8')) for k, f in files.items()}
    for k, f in files.items():
        def _sub(m):
            nonlocal n
            tgt = m.group(2) or k
            if tgt not in ids or m.group(3) in ids[tgt]: return m.group(0)
            n += 1; return m.group(1)
        md = f.read_text(encoding='utf-8')
        new = re.sub(r'\[(`[^`\]]+`)\]\(([^()\s#]*\.md)?#([^()\s]+)\)', _sub, md)
        if new != md: f.write_text(new, encoding='utf-8')
    return n

def _widget_scripts(nb):
    key = 'application/vnd.jupyter.widget-state+json'
    state = nb.get('metadata', {}).get('widgets', {}).get(key)
    if not state or not state.get('state'): return ''
    s = json.dumps(state).replace('</', '<\\/')
    return ('<script src="static/require.js"></script>\n<script>require.config({baseUrl: "static/"});</script>\n'
            '<script src="static/html-manager/embed-amd.js"></script>\n'
            f'<script type="{key}">{s}</script>')

def page_md(nb:dict, # a prepared notebook (JSON)
            title:str, # page title (markdown)
            desc:str='', # one-line summary (markdown)
            banner:str='', # HTML shown above the content
            pages:dict=None, # see `md_links`
            site_url:str='', # see `md_links`
           )->str:
    "The markdown page mkdocs renders for a prepared notebook: title, summary, banner, cells, widget state."
    parts = [f'# {title}'] + ([f'{desc}\n{{: .lg-desc }}'] if desc else []) + ([banner] if banner else [])
    parts += [m for c in nb['cells'] if (m := cell_md(c).strip())]
    w = _widget_scripts(nb)
    if w: parts.append(w)
    return md_links('\n\n'.join(parts) + '\n', pages or {}, site_url)

_SOURCE_HTML = '''<a href="{{ config.repo_url }}" title="{{ lang.t('source') }}" class="md-source">
  <div class="md-source__icon md-icon">{% include ".icons/fontawesome/brands/github.svg" %}</div>
  <div class="md-source__repository">{{ config.repo_name }}</div>
</a>
'''
# material's own source partial asks api.github.com for stars and forks: a request to another host, so no facts here

_MATHJAX_JS = '''window.MathJax = {tex: {inlineMath: [['\\\\(', '\\\\)']], displayMath: [['\\\\[', '\\\\]']],
  processEscapes: true, processEnvironments: true}, options: {enableMenu: false, ignoreHtmlClass: '.*|',
  processHtmlClass: 'arithmatex'}, loader: {paths: {mathjax: 'static/mathjax'}}, svg: {fontCache: 'global'},
  startup: {ready: function () { MathJax.startup.defaultReady(); lgHub(); }}};
/* the widget renderer typesets labels with MathJax 2's MathJax.Hub.Queue: map it onto MathJax 3 */
function lgHub() { window.MathJax.Hub = {Queue: function (a) {
  try { if (window.MathJax.typesetPromise) window.MathJax.typesetPromise(a && a[2] ? [a[2]] : undefined).catch(function () {}); }
  catch (e) {} }}; }
lgHub();
'''

_SITE_CSS = '''
.md-typeset .lg-desc { font-size: 1.15em; opacity: .75; font-style: italic; margin-top: -.6em; }
.md-typeset .lg-banner { border-left: 4px solid #d9a400; background: #fff8e1; padding: 8px 12px; margin: 10px 0 16px 0; }
.md-typeset .lg-output { margin: .4em 0 1.2em 0; overflow-x: auto; }
.md-typeset .lg-output svg, .md-typeset .lg-output img { max-width: 100%; height: auto; }
.md-typeset .lg-html table { font-size: .85em; }
.md-typeset a[href*="/blob/"][href*="#L"], .md-typeset a[href*="/blob/"][href$=".py"] { float: right; font-size: smaller; }
.md-typeset .lg-api-index li { margin: 0 0 .15em 0; }
.md-typeset h3[id] code, .md-typeset h3[id] { word-break: break-word; }
'''

def mkdocs_yml(cfg, # nbdev config (settings.ini)
               nav:list, # (title, markdown file) in order
               docs_dir:Path, # the markdown pages
               site_dir:Path, # where the site goes
               overrides:Path, # theme overrides folder
              )->str:
    "mkdocs.yml for the site: material theme with local search and no web fonts, repo links from settings.ini."
    j = json.dumps
    repo = cfg.get('git_url', '')
    repo_name = '/'.join(repo.rstrip('/').split('/')[-2:]) if repo else ''
    lines = [f"site_name: {j(cfg.get('title', cfg.lib_name))}", f"site_description: {j(cfg.get('description', ''))}",
             f"docs_dir: {j(str(docs_dir))}", f"site_dir: {j(str(site_dir))}", "use_directory_urls: false",
             f"copyright: {j(cfg.get('copyright', ''))}"]
    if repo: lines += [f"repo_url: {j(repo)}", f"repo_name: {j(repo_name)}", "edit_uri: ''"]
    lines += ['theme:', '  name: material', f'  custom_dir: {j(str(overrides))}', '  font: false', '  language: en',
              '  palette: {primary: indigo, accent: indigo}',
              '  features: [navigation.footer, navigation.top, navigation.tracking, toc.follow, content.code.copy,'
              ' search.suggest, search.highlight]',
              'plugins: [search]',
              'markdown_extensions:', '  - attr_list', '  - admonition', '  - tables', '  - footnotes', '  - md_in_html',
              '  - toc:', '      permalink: true', '      title: On this page', '      toc_depth: 3',   # + slugify: run_mkdocs
              '  - pymdownx.highlight: {use_pygments: true}', '  - pymdownx.superfences', '  - pymdownx.details',
              '  - pymdownx.arithmatex: {generic: true}',
              'extra_css: [assets/lg.css]', 'extra_javascript: [assets/mathjax-config.js, static/mathjax/tex-svg.js]',
              'extra:', '  generator: false']
    if repo: lines += ['  social:', f'    - {{icon: fontawesome/brands/github, link: {j(repo)}, name: {j(repo_name)}}}']
    lines += ['validation:', '  omitted_files: ignore', '  absolute_links: ignore', '  unrecognized_links: ignore',
              '  anchors: warn', 'nav:'] + [f'  - {j(t)}: {j(f)}' for t, f in nav]
    return '\n'.join(lines) + '\n'

def run_mkdocs(config_file:Path, # mkdocs.yml
              )->list:
    "Build the site with mkdocs in this process, heading ids by `slugify`; returns mkdocs' warnings (bad links, anchors)."
    import logging
    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    warns = []
    class _Keep(logging.Handler):
        def emit(self, r):
            if r.levelno >= logging.WARNING: warns.append(r.getMessage())
    lg = logging.getLogger('mkdocs'); h = _Keep(); lg.addHandler(h)
    old = lg.level; lg.setLevel(logging.INFO)
    try:
        cfg = load_config(str(config_file))
        cfg.mdx_configs.setdefault('toc', {})['slugify'] = slugify   # the object itself: no `!!python/name:` import path
        build(cfg)
    finally: lg.removeHandler(h); lg.setLevel(old)
    return warns

def _first_line(o):
    import inspect
    d = inspect.getdoc(o) or ''
    return d.strip().split('\n')[0] if d else ''

def api_md(api:list, # (notebook, module, markdown file, show_doc markdowns) in notebook order
           lib:str, # the library's name
          )->str:
    "The API page: an index of every module's public names grouped by notebook, then each one's `show_doc`."
    idx, body = [], []
    for p, mod, md_file, docs in api:
        if not docs: continue
        names = []
        for d in docs:
            m = re.search(r'^#{2,4}\s+([\w.]+)\s*$', d, re.MULTILINE)
            if m: names.append(m.group(1))
        head = f'{lib}.{mod}' if mod else Path(p).stem
        idx.append(f'**[{head}]({md_file})** ({Path(p).name}): ' + ', '.join(f'[`{n}`](#{slugify(n)})' for n in names))
        body.append(f'## {head}\n\nFrom [{Path(p).name}]({md_file}).')
        body += [clean_signature(d) for d in docs]
    return ('# API reference\n\nEvery exported function and class, with its signature and documented arguments, grouped '
            'by the notebook that explains it.\n\n## Index\n\n<div class="lg-api-index" markdown>\n\n' +
            '\n'.join(f'- {i}' for i in idx) + '\n\n</div>\n\n' + '\n\n'.join(body) + '\n')

# nbdev documents what `def` and `class` statements export; a namedtuple made by assignment would be left out of the
# API reference without `undocumented`.
def undocumented(module:str, # a module of the library, e.g. `localgeom_nb.spectrum`
                 shown, # names its page already documents with `show_doc`
                )->list:
    "`show_doc` markdown for the functions and classes in `module.__all__` that are not in `shown` (e.g. namedtuples)."
    import importlib, inspect
    from nbdev.showdoc import show_doc
    m, res = importlib.import_module(module), []
    for name in getattr(m, '__all__', []):
        o = getattr(m, name, None)
        if name in shown or not (inspect.isfunction(o) or inspect.isclass(o)) or getattr(o, '__module__', '') != m.__name__: continue
        res.append(show_doc(o)._repr_markdown_())
    return res

def _select(order, only):
    if not only: return list(order)
    toks = [t.strip() for t in (only.split(',') if isinstance(only, str) else only) if t.strip()]
    def _hit(p): return any(t in (p.stem, p.name, Path(page_name(p)).stem) or fnmatch.fnmatch(p.stem, t) for t in toks)
    sel = [p for p in order if _hit(p)]
    if not sel: raise DocsError(f"--only {','.join(toks)} matches no notebook; choose from: {', '.join(p.stem for p in order)}")
    return sel

# A notebook that reads `LOCALGEOM_DOCS` to run smaller settings gets a banner saying so at the top of its page.
_re_docs_env = re.compile(r'''(environ(\.get)?|getenv)\s*[\[(]\s*['"]LOCALGEOM_DOCS['"]''')

def _reduced_banner(src_nb):
    if not any(_re_docs_env.search(_src(c)) for c in src_nb['cells'] if c['cell_type'] == 'code'): return ''
    return ('<div class="lg-banner"><b>Docs build:</b> this page was executed with <code>LOCALGEOM_DOCS=1</code>, '
            'which makes this notebook use smaller settings than a full run (see the cells that read it).</div>')

def _copy_assets(nbs, out):
    for f in nbs.rglob('*'):
        rel = f.relative_to(nbs)
        if not f.is_file() or any(p.startswith(('.', '_')) for p in rel.parts): continue
        if f.suffix in ('.ipynb', '.yml', '.yaml', '.py', '.qmd') or f.name == 'sidebar.yml': continue
        (out/rel).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(f, out/rel)

def _outputs_kinds(nb):
    mimes = {k for c in nb['cells'] for o in c.get('outputs', []) for k in o.get('data', {})}
    return {'charts': any(k == 'image/svg+xml' or _re_vega.fullmatch(k) for k in mimes),
            'images': any(k.startswith('image/') for k in mimes),
            'widgets': 'application/vnd.jupyter.widget-view+json' in mimes}

# Executing notebooks two at a time pays on 2 cores only when each kernel keeps to its share of the cores
# (`OMP_NUM_THREADS`); a failing notebook stops the build at once.
def _run_all(f, items, n_workers):
    "`f` over `items` in `n_workers` threads; the first failure cancels what has not started and is raised."
    from concurrent.futures import as_completed
    ex = ThreadPoolExecutor(max(1, n_workers))
    futs = {ex.submit(f, o): o for o in items}
    try:
        for fut in as_completed(futs): fut.result()
    except BaseException:
        ex.shutdown(wait=True, cancel_futures=True); raise
    ex.shutdown()
    return {futs[fu]: fu.result() for fu in futs}

def _pre_docs(cfg):
    "What `nbdev_docs` does before Quarto: `_quarto.yml`, `nbdev.yml`, `_modidx.py` (the sidebar comes in `nb_order`)."
    import warnings, nbdev.doclinks
    from nbdev.quarto import refresh_quarto_yml
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        refresh_quarto_yml()
        nbdev.doclinks._build_modidx()

def _proc_one(item):
    "nbdev's processing of one notebook (`nbdev.serve_drv.main`); the error as text instead of raising it."
    import warnings, nbdev.serve_drv
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        try: nbdev.serve_drv.main(item)
        except Exception as e: return f'{Path(item[0]).name}: nbdev processing failed: {e}'

def _proc(cfg, staging, n_workers):
    "What `proc_nbs` does with the executed notebooks in `staging`, into `_proc/`; returns it and the failures by notebook."
    from nbdev.serve import _proc_file
    from fastcore.parallel import parallel
    cache = Path(cfg.config_path)/'_proc'
    shutil.rmtree(cache, ignore_errors=True); cache.mkdir(parents=True)
    items = [r for s in sorted(Path(staging).rglob('*')) if s.is_file() and (r := _proc_file(s, cache, Path(staging)))]
    errs = parallel(_proc_one, items, n_workers=n_workers, pause=0.01, method='spawn') if n_workers > 1 else map(_proc_one, items)
    return cache, [e for e in errs if e]

def _theme_files(bdir, docs_dir):
    "The theme override (a plain repository link), the site's CSS and the MathJax settings."
    (bdir/'overrides'/'partials').mkdir(parents=True, exist_ok=True)
    (bdir/'overrides'/'partials'/'source.html').write_text(_SOURCE_HTML)
    (docs_dir/'assets').mkdir(parents=True, exist_ok=True)
    (docs_dir/'assets'/'lg.css').write_text(_SITE_CSS)
    (docs_dir/'assets'/'mathjax-config.js').write_text(_MATHJAX_JS)

# Executing the notebooks is most of a build's time; a notebook whose cells and library modules hash as in the last
# build (`build/docs/executed/`) reuses that build's outputs, so rebuilding after a change in one notebook runs only
# that one. `--fresh` runs them all. (A change to this builder alone does not re-execute the notebooks.)
def exec_key(nb_path:Path, # a notebook
             lib:Path, # the library folder whose modules it imports
             extra:str='', # anything else its outputs depend on (flags)
            )->str:
    "A hash of what a notebook's outputs depend on: its cells (not outputs), every library module, `extra`."
    import hashlib
    h = hashlib.sha256(extra.encode())
    for c in _nb_json(nb_path)['cells']: h.update((c['cell_type'] + _src(c)).encode())
    for f in sorted(Path(lib).rglob('*.py')):   # not the symbol index (it changes with every export, not the code)
        if f.name != '_modidx.py': h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()

def build_site(root:Path='.', # project root (where settings.ini is)
               out:str='_site', # output folder, relative to `root`
               only=None, # notebooks to (re)build: names, stems or globs (comma-separated string or list); None: all
               execute:bool=True, # run the notebooks (False: use the outputs saved in them)
               flags=(), # test flags whose cells run too (e.g. `('slow',)`)
               n_workers:int=2, # notebooks executed at once, and nbdev processing workers
               timeout:int=600, # seconds per cell
               npm:str=None, # npm executable
               quiet:bool=False, # no progress lines
               write_outputs:bool=False, # also save the executed notebooks into `nbs/` (for `nbdev_docs` in CI; don't commit)
               keep_going:bool=False, # a failing notebook becomes a page without outputs; raise at the end
               cache:bool=True, # reuse a notebook's outputs from the last build when `exec_key` is unchanged
              )->dict:
    "Build the static docs site from the notebooks in `root`, offline; returns the manifest also saved as `out/manifest.json`."
    from nbdev.config import get_config
    t0, root = time.time(), Path(root).resolve()
    log = (lambda *a: None) if quiet else (lambda *a: print('[docs_site]', *a, flush=True))
    old_cwd = os.getcwd(); os.chdir(root)
    if str(root) not in sys.path: sys.path.insert(0, str(root))   # `api.html` imports the project's modules (`undocumented`)
    try:
        cfg = get_config()
        nbs, outp, bdir = Path(cfg.nbs_path), root/out, root/'build'/'docs'
        docs_dir = bdir/'docs'
        _pre_docs(cfg)
        order = nb_order(nbs)
        if not order: raise DocsError(f'no notebooks found in {nbs}')
        sel = _select(order, only)
        srcs = {p: _nb_json(nbs/p) for p in order}
        pages = [{'page': page_name(p), 'title': nb_title(srcs[p], p.stem), 'source': p.as_posix()} for p in order]
        pages[0]['title'] = 'Home' if order[0].stem == 'index' else pages[0]['title']
        pages.append({'page': 'api.html', 'title': 'API reference', 'source': None})
        if not only: shutil.rmtree(docs_dir, ignore_errors=True)
        docs_dir.mkdir(parents=True, exist_ok=True)
        fetch_static(bdir/'static', npm=npm); log('static files from npm:', _stamp())
        with tempfile.TemporaryDirectory(prefix='lgdocs-') as tmp:
            staging = Path(tmp)/'nbs'; staging.mkdir()
            if (nbs/'_quarto.yml').exists(): shutil.copy2(nbs/'_quarto.yml', staging)
            startup = Path(tmp)/'startup.py'; startup.write_text(_STARTUP)
            env, tst = kernel_env(root, startup), tuple(str(cfg.get('tst_flags', '')).split())
            if n_workers > 1 and 'OMP_NUM_THREADS' not in os.environ:   # kernels side by side: share the cores
                env['OMP_NUM_THREADS'] = str(max(1, (os.cpu_count() or 1) // n_workers))
            stats, failed = {}, []
            if execute:
                ex_dir, extra = bdir/'executed', ' '.join(tst) + '|' + ' '.join(flags)
                def _run(p):
                    key, done = exec_key(nbs/p, root/cfg.lib_path, extra), ex_dir/p
                    kf = Path(f'{done}.key')
                    if cache and done.exists() and kf.exists() and kf.read_text() == key and Path(f'{done}.json').exists():
                        (staging/p).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(done, staging/p)
                        log(f'reused {p} (unchanged since the last build)')
                        return json.loads(Path(f'{done}.json').read_text())
                    try: r = execute_nb(nbs/p, staging/p, env, tst, tuple(flags), timeout)
                    except DocsError as e:
                        if not keep_going: raise
                        failed.append(str(e)); log(f'FAILED {p} (kept going; the page has no outputs)')
                        (staging/p).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(nbs/p, staging/p)
                        return {'notebook': p.name, 'cells_run': 0, 'cells_skipped': 0, 'seconds': 0, 'failed': True}
                    log(f"executed {p} in {r['seconds']} s ({r['cells_run']} cells run, {r['cells_skipped']} skipped)")
                    done.parent.mkdir(parents=True, exist_ok=True); shutil.copy2(staging/p, done)
                    Path(f'{done}.json').write_text(json.dumps(r)); Path(f'{done}.key').write_text(key)
                    return r
                stats = _run_all(_run, sel, n_workers)
                if write_outputs:
                    for p in sel: shutil.copy2(staging/p, nbs/p)
            else:
                for p in sel: (staging/p).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(nbs/p, staging/p)
            t1 = time.time(); cache, perr = _proc(cfg, staging, n_workers); log(f'nbdev processing: {time.time()-t1:.1f} s')
            if perr and not keep_going: raise DocsError('\n\n'.join(perr)[-6000:])
            failed += perr
        manifest = _write_pages(cfg, nbs, docs_dir, cache, order, sel, srcs, pages, stats, only, log)
        _copy_assets(nbs, docs_dir); _theme_files(bdir, docs_dir)
        n_un = unlink_missing(docs_dir)
        if n_un: log(f'{n_un} links to names without a heading left as plain code')
        nav = [(plain_title(p['title']), md_name(p['page'])) for p in pages if (docs_dir/md_name(p['page'])).exists()]
        (bdir/'mkdocs.yml').write_text(mkdocs_yml(cfg, nav, docs_dir, outp, bdir/'overrides'))
        t2 = time.time(); warns = run_mkdocs(bdir/'mkdocs.yml')
        for w in warns: log('mkdocs:', w)
        log(f'mkdocs-material: {len(nav)} pages in {time.time()-t2:.1f} s')
        shutil.copytree(bdir/'static', outp/'static', dirs_exist_ok=True)
        manifest.update(seconds=round(time.time()-t0, 1), executed=execute, static=_stamp(), generator='mkdocs-material',
                        mkdocs_warnings=warns)
        if only and (bdir/'manifest.json').exists():
            old = json.loads((bdir/'manifest.json').read_text())
            keep = {p['page']: p for p in old.get('pages', [])}; keep.update({p['page']: p for p in manifest['pages']})
            manifest['pages'] = [keep[p['page']] for p in pages if p['page'] in keep]
        (bdir/'manifest.json').write_text(json.dumps(manifest, indent=1))
        (outp/'manifest.json').write_text(json.dumps(manifest, indent=1))
        log(f"{len(manifest['pages'])} pages in {outp} ({manifest['seconds']} s)")
        if failed: raise DocsError(f'{len(failed)} notebooks failed (their pages lack outputs):\n\n' + '\n\n'.join(failed)[-8000:])
        return manifest
    finally: os.chdir(old_cwd)

def _doc_mds(nb):
    "The `show_doc` outputs of a processed notebook, as markdown."
    res = []
    for c in nb['cells']:
        if c['cell_type'] != 'code' or not strip_directives(_src(c)).startswith('show_doc('): continue
        for o in c.get('outputs', []):
            md = o.get('data', {}).get('text/markdown')
            if md is not None: res.append(clean_quarto(_txt(md)))
    return res

def md_name(page:str, # a page of the site, e.g. `track.html`
           )->str:
    "The markdown file mkdocs makes `page` from."
    return re.sub(r'\.html$', '.md', page)

def _write_pages(cfg, nbs, docs_dir, cache, order, sel, srcs, pages, stats, only, log):
    "Markdown pages for the notebooks in `sel` (and `api.md`) into `docs_dir`; returns the manifest's pages."
    site_url = f"{cfg.get('doc_host', '')}{cfg.get('doc_baseurl', '')}"
    links = {p.name: md_name(page_name(p)) for p in order}
    links.update({page_name(p): md_name(page_name(p)) for p in order})
    brand, res, api = cfg.get('title', cfg.lib_name), [], []
    def _write(md, page):
        f = docs_dir/md_name(page); f.parent.mkdir(parents=True, exist_ok=True); f.write_text(md, encoding='utf-8')
    for p in order:
        f = cache/p
        if p not in sel or not f.exists(): continue
        nb = _nb_json(f); fm = _frontmatter(nb); page = page_name(p)
        title = str(fm.get('title') or nb_title(srcs[p], p.stem))
        mod = nb_module(srcs[p])
        shown = _doc_mds(nb)
        kinds = _outputs_kinds(prep_cells(nb))
        prune_widget_state(nb)
        _write(page_md(nb, title, str(fm.get('description', '')), _reduced_banner(srcs[p]), links, site_url), page)
        if mod and not only:
            names = {m for c in nb['cells'] if c['cell_type'] == 'code' for m in re.findall(r'show_doc\(([\w.]+)', _src(c))}
            shown += undocumented(f'{cfg.lib_name}.{mod}', names)
        api.append((p, mod, md_name(page), [md_links(d, links, site_url) for d in shown]))
        res.append({'page': page, 'title': plain_title(title), 'source': p.as_posix(), 'proc': str(f.relative_to(cfg.config_path)),
                    'module': mod, **kinds, **{k: v for k, v in stats.get(p, {}).items() if k != 'notebook'}})
    if not any(p.stem == 'index' for p in order):
        _write(f"# {brand}\n\n{cfg.get('description', '')}\n", 'index.html')
    if not only:
        _write(api_md(api, cfg.lib_name), 'api.html')
        res.append({'page': 'api.html', 'title': 'API reference', 'source': None, 'charts': False, 'images': False, 'widgets': False})
    log(f'wrote {len(res)} pages')
    return {'pages': res}

# `nbdev_readme` needs Quarto; this keeps README.md and the landing page the same text, and CI checks they agree.
_hidden = {'hide', 'export', 'exporti', 'exports', 'default_exp'}

def _readme_links(md):
    "Links and images relative to `nbs/` made relative to the repository root."
    return re.sub(r'(\]\()(?![a-z][a-z0-9+.-]*:|/|#)([^)\s]+)', r'\1nbs/\2', md)

def write_readme(nb_path:Path=None, # the landing notebook (default: `nbs/<readme_nb>` from settings.ini)
                 dest:Path=None, # where to write README.md (None: only return the text)
                )->str:
    "README text from the landing notebook, offline: markdown cells as they are, code cells as code blocks, hidden cells skipped."
    if nb_path is None:
        from nbdev.config import get_config
        cfg = get_config(); nb_path = Path(cfg.nbs_path)/cfg.get('readme_nb', 'index.ipynb')
    parts = []
    for c in _nb_json(nb_path)['cells']:
        src = _src(c).strip()
        if not src or c['cell_type'] == 'raw': continue
        if c['cell_type'] == 'markdown': parts.append(_readme_links(src)); continue
        d = cell_directives(src)
        if d.keys() & _hidden or d.get('echo:', '') == 'false' or d.get('include:', '') == 'false': continue
        parts.append(f"```python\n{strip_directives(src)}\n```")
    text = '\n\n'.join(parts) + ('\n\n<!-- Generated from nbs/index.ipynb by `python tools/docs_site.py --readme`: '
                                 'edit the notebook, not this file. -->\n')
    if dest is not None: Path(dest).write_text(text, encoding='utf-8')
    return text

def _parser():
    p = argparse.ArgumentParser(prog='python tools/docs_site.py',
                                description='Build the docs site in _site/ from the notebooks, offline (nbclient + nbdev '
                                'processing + mkdocs-material), or README.md from nbs/index.ipynb.')
    p.add_argument('--out', default='_site', help='output folder (default: _site)')
    p.add_argument('--only', default=None, help='comma-separated notebooks to rebuild (stems, page names or globs)')
    p.add_argument('--no-exec', action='store_true', help='use the outputs saved in the notebooks instead of running them')
    p.add_argument('--flags', default='', help='test flags whose cells run too, e.g. "slow"')
    p.add_argument('--workers', type=int, default=2, help='notebooks executed at once (default: 2)')
    p.add_argument('--timeout', type=int, default=600, help='seconds allowed per cell (default: 600)')
    p.add_argument('--write-outputs', action='store_true', help='also save the executed notebooks into nbs/ '
                   '(for nbdev_docs on a machine with Quarto; do not commit them)')
    p.add_argument('--fresh', action='store_true', help='execute every notebook, even those unchanged since the last build')
    p.add_argument('--keep-going', action='store_true', help='build every page even when a notebook fails '
                   '(its page has no outputs); still exit 1 at the end')
    p.add_argument('--readme', action='store_true', help='write README.md from nbs/index.ipynb and stop')
    p.add_argument('--check-readme', action='store_true', help='exit 1 if README.md differs from nbs/index.ipynb')
    return p

def main(argv=None):
    "The command line (`python tools/docs_site.py --help`); returns the exit code."
    a = _parser().parse_args(argv)
    try:
        if a.readme or a.check_readme:
            from nbdev.config import get_config
            readme = get_config().config_path/'README.md'
            text = write_readme()
            if a.check_readme:
                ok = readme.exists() and readme.read_text(encoding='utf-8') == text
                print('README.md matches nbs/index.ipynb' if ok else
                      'README.md differs from nbs/index.ipynb: run `python tools/docs_site.py --readme`')
                return 0 if ok else 1
            readme.write_text(text, encoding='utf-8'); print(f'wrote {readme}'); return 0
        build_site(out=a.out, only=a.only, execute=not a.no_exec, flags=tuple(a.flags.split()), n_workers=a.workers,
                   timeout=a.timeout, write_outputs=a.write_outputs, keep_going=a.keep_going, cache=not a.fresh)
        return 0
    except DocsError as e:
        print(f'docs_site: {e}', file=sys.stderr); return 1
    except ModuleNotFoundError as e:  # nbdev, nbclient and mkdocs-material come with the `dev` extra
        print(f'docs_site: the docs tools are not installed ({e}); run pip install -e ".[dev]" in a '
              'checkout of the repository.', file=sys.stderr)
        return 1

if __name__ == "__main__":
    # Run as the module `docs_site`, not as `__main__`: nbdev's processing sends `_proc_one` to spawned workers, which
    # find it by module name (tools/ is on their sys.path as on ours). By `__main__` it would be lost after a worker's
    # first notebook, whose IPython shell (`exec_show_docs`) replaces that worker's `__main__`.
    import docs_site
    sys.exit(docs_site.main())
