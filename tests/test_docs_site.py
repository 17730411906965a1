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
    srcs = list(NBS.glob('*.ipynb')) + list((ROOT/'localgeom_nb').glob('*.py')) + [ROOT/'tools'/'docs_site.py']
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
        r = subprocess.run([sys.executable, str(ROOT/'tools'/'docs_site.py')], cwd=ROOT, capture_output=True, text=True,
                           timeout=1200)
        print(f'docs build: {time.time()-t:.0f} s')
        assert r.returncode == 0, 'tools/docs_site.py failed:\n' + r.stdout[-4000:] + r.stderr[-6000:]
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
  const charts = [...document.querySelectorAll('.lg-output svg, .lg-output canvas, .lg-output img')]
      .filter(e => !e.closest('mjx-container') && !e.closest('.jupyter-widgets') && big(e));
  const widgets = [...document.querySelectorAll('.lg-output [class*="widget-"]')].filter(big);
  const nav = [...document.querySelectorAll('.md-nav--primary > .md-nav__list > .md-nav__item > a.md-nav__link')];
  const toc = document.querySelector('.md-sidebar--secondary .md-nav--secondary');
  return {title: document.title, nav: nav.map(a => a.getAttribute('href')),
          charts: charts.length, widgets: widgets.length, h1: (document.querySelector('h1') || {}).textContent || '',
          toc: toc ? (toc.querySelector('.md-nav__title') || {}).textContent || '' : null,
          prev: (document.querySelector('a.md-footer__link--prev') || {href: null}).href,
          next: (document.querySelector('a.md-footer__link--next') || {href: null}).href,
          repo: (document.querySelector('.md-header a.md-source') || {href: null}).href,
          code: document.querySelectorAll('.md-content pre > code').length,
          copy: document.querySelectorAll('.md-content pre button.md-code__button, .md-content button.md-clipboard').length};
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
                    try: page.wait_for_selector('.lg-output [class*="widget-"]', timeout=20000)
                    except Exception: pass
                page.wait_for_timeout(300)
                rec.update(page.evaluate(_PROBE))
                if pg['source'] and Path(pg['source']).stem == '10_explorer':
                    w = page.locator('.lg-output [class*="widget-"]')
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


class _Anchors(HTMLParser):
    "Every `id`/`name` on a page, and every `href` outside `<svg>` (vega's own `#clip` references are not links)."
    def __init__(self): super().__init__(); self.ids, self.hrefs, self.svg = set(), [], 0
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.ids |= {v for k, v in attrs if k in ('id', 'name') and v}
        if tag == 'svg': self.svg += 1
        if tag == 'a' and a.get('href') and not self.svg: self.hrefs.append(a['href'])
    def handle_endtag(self, tag):
        if tag == 'svg': self.svg = max(0, self.svg - 1)


def test_internal_links_and_anchors_resolve(site):
    "Crawl every built page: each link to a page of the site points at an existing file and, with `#x`, at an existing id."
    parsed, bad, n = {}, {}, 0
    def _page(rel):
        if rel not in parsed:
            p = _Anchors(); p.feed((SITE/rel).read_text(encoding='utf-8')); parsed[rel] = p
        return parsed[rel]
    for pg in site['pages']:
        for href in _page(pg['page']).hrefs:
            u = urlparse(href)
            if u.scheme or u.netloc: continue
            tgt = (Path(pg['page']).parent/u.path).as_posix() if u.path else pg['page']
            tgt = os.path.normpath(tgt)
            if (SITE/tgt).is_dir(): tgt = os.path.normpath(f'{tgt}/index.html')
            if not (SITE/tgt).is_file(): bad.setdefault(pg['page'], []).append(f'{href} (no file)'); continue
            n += 1
            if u.fragment and tgt.endswith('.html') and u.fragment not in _page(tgt).ids:
                bad.setdefault(pg['page'], []).append(f'{href} (no id "{u.fragment}" in {tgt})')
    assert n > 100, f'only {n} internal links found'
    assert not bad, f'{sum(map(len, bad.values()))} broken internal links: ' + json.dumps(bad, indent=1)[:6000]


def test_site_has_toc_prev_next_repo_and_copy_buttons(site, visits):
    "The generator's furniture: 'On this page', prev/next links, the repository link in the header, copy buttons."
    import configparser
    cfg = configparser.ConfigParser(); cfg.read(ROOT/'settings.ini')
    repo = cfg['DEFAULT']['git_url']
    order = [p['page'] for p in site['pages']]
    for i, pg in enumerate(site['pages']):
        rec = visits[pg['page']]
        assert rec['repo'] and rec['repo'].rstrip('/') == repo.rstrip('/'), (pg['page'], rec['repo'])
        if i: assert rec['prev'] and rec['prev'].endswith('/' + order[i-1]), (pg['page'], rec['prev'])
        if i < len(order) - 1: assert rec['next'] and rec['next'].endswith('/' + order[i+1]), (pg['page'], rec['next'])
        if rec['code']: assert rec['copy'] >= rec['code'] > 0, (pg['page'], rec['code'], rec['copy'])
    withtoc = [p for p, r in visits.items() if r['toc'] is not None]
    assert 'api.html' in withtoc and all('On this page' in visits[p]['toc'] for p in withtoc), withtoc


def test_search_finds_tracker(site, server):
    "Type `Tracker` into the site's own (local) search in the browser: a result links to the page that defines it."
    if not CHROMIUM: pytest.skip('Debian chromium is not installed: apt-get install -y chromium chromium-driver')
    pw = pytest.importorskip('playwright.sync_api', reason='playwright is not installed (pip install -e ".[dev]")')
    with pw.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={'width': 1280, 'height': 900})
            foreign = []
            page.on('request', lambda r: foreign.append(r.url) if urlparse(r.url).hostname not in LOCAL_HOSTS
                    and urlparse(r.url).scheme in ('http', 'https') else None)
            page.goto(f'{server}/index.html', wait_until='networkidle')
            page.locator('input.md-search__input').click()
            # the search worker loads and indexes search/search_index.json first; what is typed before that is lost
            page.wait_for_function("() => !/Initializing/i.test((document.querySelector('.md-search-result__meta') || {})"
                                   ".textContent || 'Initializing')", timeout=60000)
            page.keyboard.type('Tracker', delay=30)
            items = page.locator('.md-search-result__item a')
            pw.expect(items.first).to_be_visible(timeout=30000)
            hrefs = [items.nth(i).get_attribute('href') for i in range(min(items.count(), 20))]
            ARTIFACTS.mkdir(exist_ok=True); page.screenshot(path=str(ARTIFACTS/'docs-search.png'))
            assert any('#tracker' in h for h in hrefs), hrefs
            assert not foreign, foreign
        finally: browser.close()
