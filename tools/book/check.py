"""Checks the built book in a real browser (`make book` runs it after building).

Serves target/book/ on localhost and opens it in headless Chromium, driven by Playwright,
with every request that would leave the machine blocked and recorded: the book must work
offline. From the landing page it follows every internal link and checks that
- every page loads, with no script error and no request off the machine;
- every link's target exists, down to the anchor;
- each chapter draws as many figures as its executed notebook holds, each one decoded;
- the course map has a row for every item of the README's map, each with a measured value;
- the search finds a chapter by a word in it;
- a chapter opened from the file system (file://) draws its figures too.
Screenshots of the landing page and of one chapter go to target/book-check/.
"""
import functools
import http.server
import json
import os
import re
import shutil
import sys
import threading
from pathlib import Path
from urllib.parse import urldefrag, urlparse

from build import EXECUTED, ROOT, SITE, course_map

SHOTS = ROOT / "target" / "book-check"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]
SEARCH = ("Eckart", "11_theory.html")  # a word, and the chapter the search must find


def main():
    chromium = find_chromium()
    if not (SITE / "index.html").exists():
        return fail(f"no book in {SITE}: run `make book`")
    from playwright.sync_api import sync_playwright

    problems = []
    with serve(SITE) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        offsite = block_offsite(context, base)
        page = context.new_page()
        errors = watch_errors(page)
        pages, links, figures = crawl(page, base, errors, problems)
        check_course_map(page, base, problems)
        check_search(page, base, problems)
        check_from_files(page, problems)
        screenshots(page, base)
        browser.close()
    problems += [f"a request left the machine: {url}" for url in sorted(set(offsite))]
    if problems:
        return fail("\n".join(["the book's check failed:"] + problems))
    print(f"book check: {pages} pages and {links} links followed in Chromium, offline; "
          f"{figures} figures drawn in {len(chapters())} chapters, as many as the executed "
          f"notebooks hold; search finds {SEARCH[1]} by {SEARCH[0]!r}; screenshots in {SHOTS}")
    return 0


def fail(message):
    print(f"make book: {message}", file=sys.stderr)
    return 1


def find_chromium():
    candidates = [os.environ.get("MUSTKNOW_CHROMIUM")] + [
        shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")]
    found = next((c for c in candidates if c), None)
    if found is None:
        sys.exit(fail("the book's check needs Chromium: install it (Debian or Ubuntu: "
                      "apt install chromium) or set MUSTKNOW_CHROMIUM to a Chrome or "
                      "Chromium binary"))
    return found


class serve:
    """The site on a free localhost port, for the length of a `with` block."""

    def __init__(self, folder):
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

        handler = functools.partial(Quiet, directory=str(folder))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_port}/"

    def __exit__(self, *exc):
        self.server.shutdown()


def block_offsite(context, base):
    """Aborts every request that is not to the local server or a file; returns their list."""
    offsite = []

    def route(request_route):
        url = request_route.request.url
        if url.startswith((base, "file://", "data:", "blob:")):
            request_route.continue_()
        else:
            offsite.append(url)
            request_route.abort()

    context.route("**/*", route)
    return offsite


def watch_errors(page):
    errors = []
    page.on("pageerror", lambda e: errors.append(f"script error: {e}"))
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error"
            else None)
    return errors


def chapters():
    """Chapter page → figures its executed notebook holds."""
    counts = {}
    for path in sorted(EXECUTED.glob("[0-9][0-9]_*.ipynb")):
        notebook = json.loads(path.read_text(encoding="utf-8"))
        counts[f"{path.stem}.html"] = sum(
            1 for cell in notebook["cells"] for output in cell.get("outputs", [])
            if {"image/svg+xml", "image/png"} & set(output.get("data", {})))
    return counts


def crawl(page, base, errors, problems):
    """Visits every page reachable from the landing page; checks links, anchors, figures."""
    expected = chapters()
    queue, seen, anchors, ids, links, figures = ["index.html"], {"index.html"}, [], {}, 0, 0
    while queue:
        path = queue.pop(0)
        errors.clear()
        response = page.goto(base + path, wait_until="load")
        if response is None or response.status != 200:
            problems.append(f"{path}: HTTP {response.status if response else 'no response'}")
            continue
        ids[path] = set(page.eval_on_selector_all("[id], a[name]",
                                                  "els => els.map(e => e.id || e.name)"))
        for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"):
            if not href.startswith(base):
                continue
            links += 1
            target, fragment = urldefrag(href[len(base):])
            target = target or path
            if fragment:
                anchors.append((path, target, fragment))
            if target.endswith(".html") and target not in seen:
                seen.add(target)
                queue.append(target)
            elif not target.endswith(".html") and target not in seen:
                seen.add(target)
                status = page.request.get(base + target).status
                if status != 200:
                    problems.append(f"{path} links to {target}: HTTP {status}")
        if Path(path).name in expected:
            drawn = count_figures(page)
            figures += drawn
            if drawn != expected[Path(path).name]:
                problems.append(f"{path}: {drawn} figures drawn, the executed notebook holds "
                                f"{expected[Path(path).name]}")
        problems += [f"{path}: {e}" for e in errors]
    missing = sorted(set(expected) - seen)
    problems += [f"no link leads to the chapter {name}" for name in missing]
    for source, target, fragment in anchors:
        if target in ids and fragment not in ids[target]:
            problems.append(f"{source} links to {target}#{fragment}, which has no such anchor")
    return len([s for s in seen if s.endswith(".html")]), links, figures


def count_figures(page):
    """The outputs' images that the browser decoded to a picture with a size."""
    return page.eval_on_selector_all(
        ".cell_output img",
        "imgs => imgs.filter(i => i.complete && i.naturalWidth > 0 && i.naturalHeight > 0).length")


def check_course_map(page, base, problems):
    page.goto(base + "index.html", wait_until="load")
    rows = page.eval_on_selector_all(
        "#course-map table tbody tr",
        "rows => rows.map(r => [...r.cells].map(c => [c.innerText.trim(), c.querySelectorAll('a').length]))")
    items = sum(len(table_rows) for _, table_rows in course_map(
        (ROOT / "README.md").read_text(encoding="utf-8")))
    if len(rows) != items:
        problems.append(f"the course map shows {len(rows)} rows; the README's has {items}")
    for row in rows:
        if len(row) != 4 or row[1][1] == 0 or not re.search(r"\d", row[3][0]):
            problems.append(f"course map row without a link or a measured value: {row}")


def check_search(page, base, problems):
    word, chapter = SEARCH
    page.goto(f"{base}search.html?q={word}", wait_until="load")
    try:
        page.wait_for_selector(f"#search-results a[href*='{chapter}']", timeout=30_000)
    except Exception:  # Playwright's TimeoutError: the search found nothing
        problems.append(f"searching for {word!r} does not find {chapter}")


def check_from_files(page, problems):
    name, expected = next(iter(chapters().items()))
    page.goto((SITE / name).as_uri(), wait_until="load")
    drawn = count_figures(page)
    if drawn != expected:
        problems.append(f"{name} opened from the file system draws {drawn} of {expected} figures")


def screenshots(page, base):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(base + "index.html", wait_until="load")
    page.screenshot(path=SHOTS / "landing.png")
    page.goto(base + "09_diffusion.html", wait_until="load")
    page.locator(".cell_output img").first.scroll_into_view_if_needed()
    page.screenshot(path=SHOTS / "chapter.png")


if __name__ == "__main__":
    sys.exit(main())
