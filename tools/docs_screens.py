"""Screenshots of the built docs site (`make docs` first) in headless Debian chromium, for reviews:
`python tools/docs_screens.py [OUT_DIR] [PAGE#ANCHOR ...]` writes docs_<page>_1280.png files and a search screenshot."""
import functools, http.server, shutil, sys, threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run']

def main(out='test-artifacts', pages=('index.html', 'track.html#tracker', 'api.html'), width=1280, query='Tracker'):
    from playwright.sync_api import sync_playwright
    out = Path(out); out.mkdir(parents=True, exist_ok=True)
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a): pass
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(Quiet, directory=str(ROOT/'_site')))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base, done = f'http://127.0.0.1:{srv.server_port}', []
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=shutil.which('chromium'), args=ARGS)
            pg = b.new_page(viewport={'width': width, 'height': 900})
            for url in pages:
                pg.goto(f'{base}/{url}', wait_until='networkidle'); pg.wait_for_timeout(800)
                f = out/f"docs_{url.split('.html')[0]}_{width}.png"; pg.screenshot(path=str(f)); done.append(f)
            pg.goto(f'{base}/index.html', wait_until='networkidle')
            pg.locator('input.md-search__input').click()
            pg.wait_for_function("() => !/Initializing/i.test((document.querySelector('.md-search-result__meta') || {})"
                                 ".textContent || 'Initializing')", timeout=60000)
            pg.keyboard.type(query, delay=30); pg.wait_for_selector('.md-search-result__item', timeout=30000)
            f = out/f'docs_search_{width}.png'; pg.screenshot(path=str(f)); done.append(f)
            b.close()
    finally: srv.shutdown()
    for f in done: print(f)

if __name__ == '__main__':
    main(*(sys.argv[1:2] or ['test-artifacts']), **({'pages': sys.argv[2:]} if sys.argv[2:] else {}))
