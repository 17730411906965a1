"""The docs site in a real browser: build `_site/` offline (or use a fresh one with LOCALGEOM_DOCS_PREBUILT=1), serve it on
127.0.0.1 and open every page in headless Debian chromium through Playwright."""
import functools, html, http.server, importlib, inspect, json, os, re, shutil, subprocess, sys, threading, time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse
import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE, NBS, ARTIFACTS = ROOT/'_site', ROOT/'nbs', ROOT/'test-artifacts'
CHROMIUM = shutil.which('chromium')
ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
        '--disable-sync', '--no-first-run', '--disable-quic']
LOCAL_HOSTS = {'127.0.0.1', 'localhost', ''}
CHART_MIMES = re.compile(r'image/svg\+xml|application/vnd\.vega(lite)?\.v\d+\+json')


def _stale(manifest):
    "Sources newer than the built site, if any."
    built = manifest.stat().st_mtime
    srcs = list(NBS.glob('*.ipynb')) + list((ROOT/'localgeom_nb').glob('*.py'))
    return [p.name for p in srcs if p.stat().st_mtime > built]


@pytest.fixture(scope='module')
def site():
    manifest = SITE/'manifest.json'
    prebuilt = os.environ.get('LOCALGEOM_DOCS_PREBUILT', '')
    if prebuilt in ('1', 'any'):   # 1: use _site/ if it is newer than every notebook and module; any: use it as it is
        assert manifest.exists(), 'LOCALGEOM_DOCS_PREBUILT is set but _site/manifest.json is missing: run `make docs` first'
        if prebuilt == '1': assert not _stale(manifest), f'_site/ is older than {_stale(manifest)[:5]}: run `make docs` again'
    else:
        t = time.time()
        r = subprocess.run([sys.executable, '-c', 'import sys; from localgeom_nb.docs import main; sys.exit(main())'],
                           cwd=ROOT, capture_output=True, text=True, timeout=1200)
        print(f'docs build: {time.time()-t:.0f} s')
        assert r.returncode == 0, 'localgeom-docs failed:\n' + r.stdout[-4000:] + r.stderr[-6000:]
    return json.loads(manifest.read_text())


@pytest.fixture(scope='module')
def server(site):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a): pass
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(Quiet, directory=str(SITE)))
    th = threading.Thread(target=srv.serve_forever, daemon=True); th.start()
    yield f'http://127.0.0.1:{srv.server_port}'
    srv.shutdown(); srv.server_close()


_PROBE = """() => {
  const big = e => { const r = e.getBoundingClientRect(); return r.width > 40 && r.height > 40; };
  const charts = [...document.querySelectorAll('.jp-OutputArea-output svg, .jp-OutputArea-output canvas, '
                                             + '.jp-OutputArea-output img[src^="data:image/svg"]')]
      .filter(e => !e.closest('mjx-container') && !e.closest('.jupyter-widgets') && big(e));
  const widgets = [...document.querySelectorAll('.jp-OutputArea-output [class*="widget-"]')].filter(big);
  return {title: document.title, nav: [...document.querySelectorAll('nav.lg-nav ol a')].map(a => a.getAttribute('href')),
          charts: charts.length, widgets: widgets.length, h1: (document.querySelector('h1') || {}).textContent || ''};
}"""


@pytest.fixture(scope='module')
def visits(site, server):
    "Open every page once; record console errors, requests, title, nav, charts and widgets."
    if not CHROMIUM: pytest.skip('Debian chromium is not installed: apt-get install -y chromium chromium-driver')
    pw = pytest.importorskip('playwright.sync_api', reason='playwright is not installed (pip install -e ".[dev]")')
    res = {}
    ARTIFACTS.mkdir(exist_ok=True)
    with pw.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            for pg in site['pages']:
                page = browser.new_page(viewport={'width': 1280, 'height': 900})
                rec = {'errors': [], 'requests': [], 'failed': []}
                page.on('console', lambda m, rec=rec: rec['errors'].append(m.text) if m.type == 'error' else None)
                page.on('pageerror', lambda e, rec=rec: rec['errors'].append(f'page error: {e}'))
                page.on('request', lambda r, rec=rec: rec['requests'].append(r.url))
                page.on('requestfailed', lambda r, rec=rec: rec['failed'].append(r.url))
                page.on('response', lambda r, rec=rec: rec['failed'].append(f'{r.status} {r.url}') if r.status >= 400 else None)
                page.goto(f"{server}/{pg['page']}", wait_until='load', timeout=60000)
                page.wait_for_load_state('networkidle', timeout=60000)
                if pg.get('widgets'):
                    try: page.wait_for_selector('.jp-OutputArea-output [class*="widget-"]', timeout=20000)
                    except Exception: pass
                page.wait_for_timeout(300)
                rec.update(page.evaluate(_PROBE))
                if pg['source'] and Path(pg['source']).stem == '10_explorer':
                    w = page.locator('.jp-OutputArea-output [class*="widget-"]')
                    if w.count(): w.first.scroll_into_view_if_needed()
                    page.screenshot(path=str(ARTIFACTS/'docs-explorer.png'))
                elif pg['page'] == 'index.html' and not (ARTIFACTS/'docs-explorer.png').exists():
                    page.screenshot(path=str(ARTIFACTS/'docs-index.png'), full_page=True)
                res[pg['page']] = rec
                page.close()
        finally: browser.close()
    return res


def test_every_page_loads_cleanly(site, visits):
    bad = {}
    for page, rec in visits.items():
        foreign = [u for u in rec['requests'] if urlparse(u).scheme not in ('data', 'blob', 'about', 'file')
                   and urlparse(u).hostname not in LOCAL_HOSTS]
        probs = [f'console: {e}' for e in rec['errors']] + [f'request to another host: {u}' for u in foreign] \
              + [f'failed: {u}' for u in rec['failed']]
        if probs: bad[page] = probs[:8]
    assert not bad, json.dumps(bad, indent=1)


def test_every_page_has_title_and_nav(site, visits):
    order = [p['page'] for p in site['pages']]
    for pg in site['pages']:
        rec = visits[pg['page']]
        assert rec['title'].strip() and pg['title'] in rec['title'], (pg['page'], rec['title'])
        assert rec['nav'] == order, (pg['page'], rec['nav'])


def test_nav_follows_notebook_order(site):
    nbs = [p['source'] for p in site['pages'] if p['source']]
    assert nbs[0] == 'index.ipynb', nbs
    assert nbs[1:] == sorted(nbs[1:]), nbs
    built = {Path(p['source']).name for p in site['pages'] if p['source']}
    have = {p.name for p in NBS.glob('*.ipynb') if not p.name.startswith(('_', '.'))}
    assert built == have, f'pages missing for {sorted(have - built)}'


def _proc_outputs(pg):
    f = ROOT/pg['proc'] if pg.get('proc') else None
    if not f or not f.exists(): return None
    nb = json.loads(f.read_text())
    return {k for c in nb['cells'] for o in c.get('outputs', []) for k in o.get('data', {})}


def test_pages_with_charts_show_them(site, visits):
    checked = []
    for pg in site['pages']:
        mimes = _proc_outputs(pg)
        has = any(CHART_MIMES.fullmatch(k) for k in mimes) if mimes is not None else pg.get('charts')
        if has:
            checked.append(pg['page'])
            assert visits[pg['page']]['charts'] > 0, f"{pg['page']}: its notebook has chart outputs but no svg/canvas shows"
    if (NBS/'09_plots.ipynb').exists(): assert 'plots.html' in checked, 'the plots page has no chart outputs'


def test_explorer_shows_widget_snapshot(site, visits):
    if not (NBS/'10_explorer.ipynb').exists(): pytest.skip('nbs/10_explorer.ipynb does not exist yet')
    pg = next(p for p in site['pages'] if p['source'] == '10_explorer.ipynb')
    body = (SITE/pg['page']).read_text()
    assert 'application/vnd.jupyter.widget-state+json' in body, 'no saved widget state on the explorer page'
    assert visits[pg['page']]['widgets'] > 0, 'the explorer page shows no rendered widget (.widget-*)'


def test_pages_with_widgets_render_them(site, visits):
    for pg in site['pages']:
        if pg.get('widgets'): assert visits[pg['page']]['widgets'] > 0, f"{pg['page']}: widget outputs did not render"


class _Links(HTMLParser):
    def __init__(self): super().__init__(); self.urls = []
    def handle_starttag(self, tag, attrs):
        self.urls += [v for k, v in attrs if k in ('href', 'src') and v]


def test_local_links_resolve(site):
    missing = {}
    for pg in site['pages']:
        parser = _Links(); parser.feed((SITE/pg['page']).read_text())
        for url in parser.urls:
            u = urlparse(url)
            if u.scheme or u.netloc or not u.path: continue
            if not (SITE/Path(pg['page']).parent/u.path).exists(): missing.setdefault(pg['page'], []).append(u.path)
    assert not missing, f'links to files that are not in _site/: {missing}'


def test_api_reference_lists_every_export(site):
    text = html.unescape(re.sub(r'<[^>]+>', '', (SITE/'api.html').read_text()))
    heads = set(re.findall(r'<h3[^>]*>(.*?)<', (SITE/'api.html').read_text()))
    heads = {html.unescape(h).strip() for h in heads}
    missing = []
    for pg in site['pages']:
        if not pg.get('module'): continue
        mod = importlib.import_module(f"localgeom_nb.{pg['module']}")
        for name in getattr(mod, '__all__', []):
            obj = getattr(mod, name, None)
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and getattr(obj, '__module__', '') == mod.__name__:
                if name not in heads: missing.append(f"{pg['module']}.{name}")
    assert not missing, f'exported but not in api.html: {missing}'
    assert 'def ' in text or 'class ' in text


def test_screenshot_saved(visits):
    assert list(ARTIFACTS.glob('docs-*.png')), 'no screenshot in test-artifacts/'
