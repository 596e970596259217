"""/docs (Swagger UI) and /redoc (ReDoc) work offline: their pages name no other host, every script
and stylesheet they load is served by the app itself (from the installed fastapi-offline package
and api/static), and in headless Chromium with every request off loopback blocked both render
every operation of /openapi.json. With a token the pages are open shells that ask for it once (as
the dashboard does), /openapi.json still needs it, and Swagger UI's "Try it out" carries it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

from api.routes.api_docs import reference_page
from evolver.store import Store
from tests.api.helpers import api_settings, running_app
from tests.api.test_dashboard import CHROMIUM, _serving, browser  # noqa: F401 (browser: a fixture)

TOKEN = "docs-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PAGES = ("/docs", "/redoc")
OPERATION_SELECTORS = {"/docs": ".opblock", "/redoc": "[data-section-id^='operation/']"}  # one per operation
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"needs Debian's Chromium at {CHROMIUM}")


class References(HTMLParser):
    """Every URL the page's markup names: (tag, attribute, value), and which of them the page
    loads (scripts, stylesheets, icons, images) rather than links to."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []
        self.loaded: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for attribute in ("src", "href", "action", "data"):
            value = values.get(attribute)
            if value is None:
                continue
            self.urls.append((tag, attribute, value))
            if tag in ("script", "img") or (tag == "link" and values.get("rel") in ("stylesheet", "icon")):
                self.loaded.append(value)


def references(html: str) -> References:
    parser = References()
    parser.feed(html)
    return parser


def operation_count(openapi: dict) -> int:
    return sum(1 for item in openapi["paths"].values() for method in item if method in HTTP_METHODS)


def test_the_pages_load_only_what_the_app_serves_and_open_without_the_token(tmp_path):
    with running_app(api_settings(tmp_path, api_token=TOKEN), launcher="queue") as (client, _):
        for page in PAGES:
            response = client.get(page)  # an open shell, like the dashboard's pages
            assert response.status_code == 200, page
            assert "script-src 'self'" in response.headers["content-security-policy"]
            assert not re.search(r"(https?:)?//", response.text), f"{page} names another host"
            found = references(response.text)
            assert found.urls and found.loaded
            for tag, attribute, url in found.urls:
                assert url.startswith("/") or url == "data:,", (page, tag, attribute, url)
            scripts = [url for url in found.loaded if url.endswith(".js")]
            styles = [url for url in found.loaded if url.endswith(".css")]
            assert len(scripts) >= 3 and styles, (page, found.loaded)
            for url in scripts + styles:
                asset = client.get(url)
                assert asset.status_code == 200, url
                kind = "text/javascript" if url.endswith(".js") else "text/css"
                assert asset.headers["content-type"].startswith(kind), url
                assert len(asset.content) > 1000, url
        assert client.get("/openapi.json").status_code == 401  # the document itself stays guarded
        openapi = client.get("/openapi.json", headers=AUTH).json()
        assert openapi["openapi"].startswith("3.1") and operation_count(openapi) > 10
        for name in ("favicon.png", "..%2F..%2Fapp.py", "api_docs.jsx"):  # only the listed files
            assert client.get(f"/static/docs/{name}", headers=AUTH).status_code == 404, name


def test_the_pages_keep_a_proxy_prefix():
    page = reference_page("swagger", "/evolver")
    for url in references(page).loaded:
        assert url.startswith("/evolver/") or url == "data:,", url
    assert 'href="/evolver/openapi.json"' in page and 'href="/evolver/redoc"' in page


# In a real browser, offline.

@pytest.fixture(scope="module")
def servers(tmp_path_factory) -> Iterator[dict[str, str]]:
    """Base URLs of the app on loopback, without a token and with one, over an empty store."""
    folder = tmp_path_factory.mktemp("docs")
    url = Store.sqlite_url(folder / "evolver.db")
    with _serving(url, folder / "open", None) as open_base, _serving(url, folder / "guarded", TOKEN) as guarded:
        yield {"open": open_base, "guarded": guarded}


@contextmanager
def offline_tab(browser, base: str) -> Iterator[tuple[object, list[str]]]:
    """(tab, refused): a fresh tab whose requests to anything but `base` are aborted and listed
    in `refused`; JavaScript errors fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    refused: list[str] = []
    host = urlsplit(base).netloc

    def only_loopback(route) -> None:
        url = route.request.url
        if urlsplit(url).netloc == host or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            refused.append(url)
            route.abort("internetdisconnected")

    context.route("**/*", only_loopback)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda err: errors.append(str(err)))
    yield tab, refused
    context.close()
    assert not errors, errors


def try_it_out(tab, method: str, path: str) -> str:
    """Runs one operation from Swagger UI; the status code it shows."""
    operation = tab.locator(f".opblock-{method}", has=tab.locator(f".opblock-summary-path[data-path='{path}']"))
    operation.locator(".opblock-summary").first.click()
    operation.locator(".try-out__btn").click()
    operation.locator(".execute").click()
    status = operation.locator(".live-responses-table tr.response .response-col_status").first
    status.wait_for(timeout=15_000)
    return status.inner_text().strip()


@needs_chromium
@pytest.mark.parametrize("page", PAGES)
def test_every_operation_renders_offline(browser, servers, page):
    base = servers["open"]
    with offline_tab(browser, base) as (tab, refused):
        tab.goto(base + page)
        operations = tab.locator(OPERATION_SELECTORS[page])
        operations.first.wait_for(timeout=30_000)
        openapi = tab.evaluate("() => fetch('/openapi.json').then(r => r.json())")
        assert operations.count() == operation_count(openapi)
        assert tab.locator("#token-prompt").is_hidden()  # no token on this server: nothing asks
    # ReDoc's only outside URL, its "API docs by Redocly" logo, is stopped by the page's
    # Content-Security-Policy before it reaches the network (ReDoc then hides the image).
    assert refused == []


@needs_chromium
def test_with_a_token_the_docs_ask_once_and_try_it_out_carries_it(browser, servers):
    base = servers["guarded"]
    with offline_tab(browser, base) as (tab, refused):
        tab.goto(f"{base}/docs")
        prompt = tab.locator("#token-prompt")
        prompt.wait_for(state="visible", timeout=15_000)  # /openapi.json answered 401
        assert tab.locator(OPERATION_SELECTORS["/docs"]).count() == 0
        tab.locator("#token-input").fill(TOKEN)
        tab.locator("#token-prompt button[type=submit]").click()
        tab.locator(OPERATION_SELECTORS["/docs"]).first.wait_for(timeout=30_000)
        assert prompt.is_hidden()
        assert try_it_out(tab, "get", "/campaigns") == "200"  # without the token it would be 401
        tab.goto(f"{base}/redoc")  # the same tab keeps the token: no second prompt
        tab.locator(OPERATION_SELECTORS["/redoc"]).first.wait_for(timeout=30_000)
        assert tab.locator("#token-prompt").is_hidden()
    assert refused == []
