"""The dashboard in headless Chromium (Playwright) against the real app, served by uvicorn on
127.0.0.1, over a SQLite store holding a real campaign (sleep trainer, run by the coordinator on
a local Ray, its confirmation stage on as in the demo): the fitness chart has one point per finished
search trial, the evolve plot one chart per mutated hyperparameter, the confirmation panel the
candidates' confirmed means with their SE error bars beside their search fitness, the table sorts,
the page follows new trials (and the confirmation's state) without a reload, and a screenshot is
saved. With a token set the page asks for it once (and only then shows campaigns), cancel works,
files download through fetch with the token; without one no prompt ever shows."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from evolver.campaign import CampaignSpec
from evolver.store import Placement, Store

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
TOKEN = "dashboard-test-token"
FINISHED = ("completed", "failed", "pruned", "cancelled")

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"needs Debian's Chromium at {CHROMIUM} "
                                                              "(apt-get install -y chromium)")


def _create(store: Store, folder: Path, **fields) -> int:
    spec = CampaignSpec(**fields)
    return store.create_campaign(spec.name, spec.to_json_dict(), str(folder / spec.name))


@pytest.fixture(scope="module")
def campaigns(tmp_path_factory) -> Iterator[tuple[str, dict[str, int]]]:
    """(database URL, ids): 'done' ran to the end on a local Ray (12 search trials, then the best 3
    candidates and the base retrained with 2 seeds each); 'queued' and 'live' never started."""
    from evolver.cluster import connect, disconnect
    from evolver.coordinator import Coordinator, CoordinatorSettings
    from workers import WorkerPool, build_trainer

    folder = tmp_path_factory.mktemp("dashboard")
    url = Store.sqlite_url(folder / "evolver.db")
    store = Store.open(url)
    done = _create(store, folder, name="done", trainer="sleep", epochs=2, generations=4, population=3,
                   cpu_workers=2, seed=3)
    disconnect()
    connect(num_cpus=2)
    pool = WorkerPool(build_trainer("sleep"), cpu_workers=2)
    try:
        settings = CoordinatorSettings(poll_seconds=0.2, control_seconds=0.3, grow_seconds=1.0, progress=False)
        outcome = Coordinator(store, done, pool, settings).run()
    finally:
        pool.shutdown()
        disconnect()  # Ray is not needed any more: free the two cores for the browser
    assert outcome.status == "completed" and outcome.completed == 12 + 4 * 2, outcome
    ids = {"done": done,
           "queued": _create(store, folder, name="queued", trainer="sleep", generations=2),
           "live": _create(store, folder, name="live", trainer="sleep", epochs=2, generations=1, population=2)}
    store.close()
    yield url, ids


@contextmanager
def _serving(db_url: str, folder: Path, token: str | None) -> Iterator[str]:
    """The real app (api.app.create_app) under uvicorn on a free loopback port; yields its base URL."""
    import uvicorn

    from api.app import create_app
    from api.settings import ApiSettings

    settings = ApiSettings(db_url=db_url, api_token=token, project_dir=folder / "runs", data_roots=[folder],
                           cancel_grace_seconds=0)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=15)
    sock.close()


@pytest.fixture(scope="module")
def server(campaigns, tmp_path_factory) -> Iterator[str]:
    """A server with a token (as on a network): everything but the pages and /healthz needs it."""
    with _serving(campaigns[0], tmp_path_factory.mktemp("api"), TOKEN) as base:
        yield base


@pytest.fixture(scope="module")
def open_server(campaigns, tmp_path_factory) -> Iterator[str]:
    """The same store served without a token (loopback, as `evolver serve` runs by default)."""
    with _serving(campaigns[0], tmp_path_factory.mktemp("open-api"), None) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@contextmanager
def _tab(browser, token: str | None) -> Iterator[object]:
    """A fresh tab (fresh sessionStorage, holding `token` if given) that fails the test on any
    JavaScript error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    if token is not None:  # as if the prompt had been answered earlier in this tab
        context.add_init_script(f"try {{ sessionStorage.setItem('evolver.apiToken', {json.dumps(token)}) }} "
                                "catch {}")
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda err: errors.append(str(err)))
    yield tab
    context.close()
    assert not errors, errors


@pytest.fixture
def page(browser):
    """A tab that already holds the token."""
    with _tab(browser, TOKEN) as tab:
        yield tab


@pytest.fixture
def bare_page(browser):
    """A tab with no token: what a new visitor opens."""
    with _tab(browser, None) as tab:
        yield tab


@pytest.fixture
def store(campaigns) -> Iterator[Store]:
    with Store.open(campaigns[0]) as opened:
        yield opened


def _trace_lengths(page) -> list[int]:
    return page.evaluate("() => (document.getElementById('fitness-chart').data || []).map(t => t.x.length)")


def _table_numbers(page) -> list[int]:
    return [int(n) for n in page.locator("#trials tbody tr td:first-child").all_inner_texts()]


def test_campaign_page_draws_every_finished_trial(server, campaigns, store, page, tmp_path):
    cid = campaigns[1]["done"]
    trials = store.trials(cid)
    scored = [t for t in trials if t.status in FINISHED and t.fitness is not None and t.stage == "search"]
    generations = store.generations(cid)
    assert len(scored) == 12 and len(generations) == 4
    page.goto(f"{server}/campaigns/{cid}/view")
    page.wait_for_function("n => { const d = document.getElementById('fitness-chart').data;"
                           " return d && d[0].x.length === n }", arg=len(scored), timeout=15_000)
    assert _trace_lengths(page) == [len(scored), len(generations), len(generations)]  # trials, best, mean
    drawn = page.locator("#fitness-chart .scatterlayer .trace").first.locator(".point")
    assert drawn.count() == len(scored)  # really drawn as SVG, not only handed to plotly
    best_line = page.evaluate("() => document.getElementById('fitness-chart').data[1].y")
    assert best_line == pytest.approx([g.best_fitness for g in generations])

    # Hovering a point shows that trial's hyperparameters (the worst trial: no line passes through it).
    worst = min(range(len(scored)), key=lambda i: scored[i].fitness)
    page.locator("#fitness-chart").scroll_into_view_if_needed()  # below the confirmation panel
    box = drawn.nth(worst).bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2 - 20, box["y"] - 20)
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=5)
    hover = page.locator("#fitness-chart .hoverlayer .hovertext")
    hover.wait_for(timeout=5_000)
    hover_text = hover.text_content()
    assert f"trial {scored[worst].number}," in hover_text and "lr0" in hover_text

    # YOLOv5's evolve plot: one chart per hyperparameter that differs between trials, best starred.
    mutated = [k for k in scored[0].hyp if any(t.hyp[k] != scored[0].hyp[k] for t in scored)]
    assert mutated
    keys = page.evaluate("() => [...document.querySelectorAll('#evolve-grid .evolve-chart')].map(d => d.dataset.key)")
    assert keys == mutated
    best = max(scored, key=lambda t: t.fitness)
    first_chart = page.evaluate("() => document.querySelector('#evolve-grid .evolve-chart').data.map(t => t.x)")
    assert first_chart[0] == [t.hyp[mutated[0]] for t in scored] and first_chart[1] == [best.hyp[mutated[0]]]

    # Table, summary, downloads.
    assert _table_numbers(page) == [t.number for t in trials]
    first_row = page.locator("#trials tbody tr").first.locator("td")
    assert first_row.nth(2).inner_text() == "search" and first_row.nth(5).inner_text() == trials[0].worker
    assert page.locator("#trials tbody tr").last.locator("td").nth(2).inner_text() == "confirm · test"
    assert page.locator("#campaign-status").inner_text() == "completed"
    assert page.locator("#cancel-button").is_disabled()
    downloads = page.locator("#downloads a").all_inner_texts()
    assert downloads[:2] == ["hyp_evolved.yaml", "evolve.csv"]
    assert page.locator("#token-prompt").is_hidden()

    shot = tmp_path / "campaign.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")


def test_confirmation_panel_shows_means_with_error_bars(server, campaigns, store, page, tmp_path):
    from evolver.confirmation import build_report

    cid = campaigns[1]["done"]
    spec = CampaignSpec.model_validate(store.campaign(cid).spec)
    report = build_report(spec, store.trials(cid), campaign_ended=True)
    assert report.state == "confirmed" and len(report.candidates) == 4
    page.goto(f"{server}/campaigns/{cid}/view")
    page.wait_for_function("() => { const d = document.getElementById('confirm-chart').data; return d && d.length }",
                           timeout=15_000)
    traces = page.evaluate("() => document.getElementById('confirm-chart').data.map(t => "
                           "({name: t.name, y: t.y, error: t.error_y ? t.error_y.array : null}))")
    means, seeds, searched = traces
    assert means["y"] == pytest.approx([c.mean for c in report.candidates])
    assert means["error"] == pytest.approx([c.se for c in report.candidates])  # ± SE
    assert all(c.se > 0 for c in report.candidates)
    assert seeds["y"] == pytest.approx([f for c in report.candidates for f in c.fitnesses])
    assert searched["y"] == pytest.approx([c.candidate.search_fitness for c in report.candidates])
    # Really drawn: one error bar per candidate in the SVG.
    assert page.locator("#confirm-chart .errorbar path.yerror").count() == len(report.candidates)

    winner = report.winner
    state = page.locator("#confirm-state").inner_text()
    assert state.startswith("Confirmed: the winner is") and f"{winner.mean:.4f} ± {winner.se:.4f}" in state
    assert page.locator("#confirm-warning").is_hidden()
    rows = page.locator("#confirm-table tbody tr")
    assert rows.count() == len(report.candidates)
    assert rows.first.locator("td").first.inner_text().startswith("base")
    assert page.locator("#confirm-table tr.winner td").first.inner_text() == f"{winner.candidate.label} · winner"
    assert "test split, unseen by the search" in page.locator("#confirm-figures").inner_text()
    assert f"confirmed fitness {winner.mean:.4f}" in page.locator("#campaign-progress").inner_text()
    page.locator("#confirmation").screenshot(path=str(tmp_path / "confirmation.png"))
    print(f"screenshot: {tmp_path / 'confirmation.png'}")


def test_clicking_a_header_sorts_the_table(server, campaigns, store, page):
    cid = campaigns[1]["done"]
    trials = store.trials(cid)
    page.goto(f"{server}/campaigns/{cid}/view")
    page.wait_for_function("n => document.querySelectorAll('#trials tbody tr').length === n", arg=len(trials))
    header = page.locator("#trials th[data-key='fitness'] button")
    header.click()  # best first
    by_fitness = sorted(trials, key=lambda t: (-t.fitness, t.number))
    assert _table_numbers(page) == [t.number for t in by_fitness]
    assert page.locator("#trials th[data-key='fitness']").get_attribute("aria-sort") == "descending"
    header.click()
    assert _table_numbers(page) == [t.number for t in sorted(trials, key=lambda t: (t.fitness, t.number))]
    page.locator("#trials th[data-key='worker'] button").click()
    assert _table_numbers(page) == [t.number for t in sorted(trials, key=lambda t: (t.worker, t.number))]
    page.locator("#trials th[data-key='number'] button").click()
    assert _table_numbers(page) == [t.number for t in trials]


def _download(page, name: str) -> bytes:
    """Clicks the page's download button `name` and returns what the browser saved."""
    with page.expect_download(timeout=10_000) as saving:
        page.locator("#downloads a", has_text=name).first.click()
    download = saving.value
    assert download.suggested_filename == name
    return Path(download.path()).read_bytes()


def test_with_a_token_the_dashboard_asks_once_then_lists_and_downloads(server, campaigns, store, bare_page):
    page, ids = bare_page, campaigns[1]
    page.goto(f"{server}/")
    prompt = page.locator("#token-prompt")
    prompt.wait_for(state="visible", timeout=10_000)  # the list's first fetch answered 401
    assert page.locator("#token-reason").inner_text() == "This server needs its API token."
    assert page.locator(f"#campaign-{ids['done']}").count() == 0  # nothing shown without the token

    page.fill("#token-input", "not-the-token")
    page.click("#token-prompt button")
    page.wait_for_function("() => /refused/.test(document.getElementById('token-reason').textContent)",
                           timeout=10_000)
    assert prompt.is_visible()
    assert page.evaluate("() => sessionStorage.getItem('evolver.apiToken')") is None  # a refused token is dropped

    page.fill("#token-input", TOKEN)
    page.click("#token-prompt button")
    for cid in ids.values():
        page.locator(f"#campaign-{cid} a").wait_for(timeout=10_000)
    assert prompt.is_hidden()
    assert page.evaluate("() => sessionStorage.getItem('evolver.apiToken')") == TOKEN
    assert TOKEN not in " ".join(page.evaluate("() => [...document.querySelectorAll('a')].map(a => a.href)"))

    page.click(f"#campaign-{ids['done']} a")  # another page of the same tab: no second question
    page.wait_for_function("() => document.getElementById('campaign-status').textContent === 'completed'")
    run_dir = Path(store.campaign(ids["done"]).run_dir)
    assert _download(page, "hyp_evolved.yaml") == (run_dir / "hyp_evolved.yaml").read_bytes()
    assert _download(page, "evolve.csv") == (run_dir / "evolve.csv").read_bytes()
    with page.context.expect_page(timeout=10_000) as opening:  # a trial's JSON, fetched with the token
        page.locator("#trials tbody tr").first.locator("a").click()
    detail = opening.value
    detail.wait_for_load_state()
    assert json.loads(detail.locator("body").inner_text())["number"] == store.trials(ids["done"])[0].number
    assert prompt.is_hidden()


def test_without_a_token_no_prompt_appears_and_downloads_work(open_server, campaigns, store, bare_page):
    page, ids = bare_page, campaigns[1]
    page.goto(f"{open_server}/")
    for cid in ids.values():
        page.locator(f"#campaign-{cid} a").wait_for(timeout=10_000)
    page.goto(f"{open_server}/campaigns/{ids['done']}/view")
    page.wait_for_function("() => document.getElementById('campaign-status').textContent === 'completed'")
    run_dir = Path(store.campaign(ids["done"]).run_dir)
    assert _download(page, "hyp_evolved.yaml") == (run_dir / "hyp_evolved.yaml").read_bytes()
    assert page.locator("#token-prompt").is_hidden()
    assert page.evaluate("() => sessionStorage.getItem('evolver.apiToken')") is None


def test_cancel_works_once_the_prompt_has_the_token(server, campaigns, store, bare_page):
    page, cid = bare_page, campaigns[1]["queued"]
    page.goto(f"{server}/campaigns/{cid}/view")
    page.locator("#token-prompt").wait_for(state="visible", timeout=10_000)
    assert "token" in page.locator("#message").inner_text()  # the page says why it shows nothing
    assert page.locator("#cancel-button").is_disabled()
    page.fill("#token-input", TOKEN)
    page.keyboard.press("Enter")
    cancel = page.locator("#cancel-button")
    page.wait_for_function("() => !document.getElementById('cancel-button').disabled")
    assert page.locator("#message").is_hidden()
    cancel.click()
    page.wait_for_function("() => document.getElementById('campaign-status').textContent === 'cancelled'")
    assert store.campaign(cid).status == "cancelled"
    assert cancel.is_disabled() and page.locator("#resume-button").is_enabled()


def test_page_follows_a_running_campaign_without_reload(server, campaigns, store, page):
    cid = campaigns[1]["live"]
    store.transition_campaign(cid, from_statuses=None, status="running")
    page.goto(f"{server}/campaigns/{cid}/view")
    page.wait_for_function("() => document.getElementById('campaign-status').textContent === 'running'")
    assert _trace_lengths(page)[0] == 0
    page.wait_for_function("() => document.getElementById('confirm-state').textContent.startsWith('Confirming')")
    assert "not confirmed" in page.locator("#confirm-warning").inner_text()  # the search runs: nothing is final
    assert page.locator("#confirm-chart").is_hidden()
    hyp = CampaignSpec(trainer="sleep").base_hyp()
    store.add_trial(cid, 0, 0, hyp, (), seed=1)
    store.start_trial(cid, 0, 1, Placement("cpu-0", "n", "127.0.0.1", None))
    store.record_epoch(cid, 0, 1, 0, {"metrics/mAP_0.5": 0.1}, 0.05)
    running = page.locator("#running-trials li#running-0")
    running.wait_for(timeout=10_000)  # the next poll (2 s) shows it, with its epoch
    page.wait_for_function("() => /epoch 1\\/2/.test(document.querySelector('#running-0').textContent)",
                           timeout=10_000)
    metrics = {"metrics/precision": 0.3, "metrics/recall": 0.4, "metrics/mAP_0.5": 0.5, "metrics/mAP_0.5:0.95": 0.2}
    store.finish_trial(cid, 0, 1, "completed", metrics=metrics, fitness=0.23, epochs_done=2)
    page.wait_for_function("() => document.getElementById('fitness-chart').data[0].x.length === 1", timeout=10_000)
    assert page.evaluate("() => document.getElementById('fitness-chart').data[0].y") == [0.23]
    assert page.locator("#running-trials li").inner_text() == "none"
    assert "(not confirmed)" in page.locator("#campaign-progress").inner_text()
    store.transition_campaign(cid, from_statuses=None, status="cancelled")  # ended before its search did
    page.wait_for_function("() => document.getElementById('confirm-state').textContent.startsWith('Not confirmed')",
                           timeout=10_000)
    assert page.locator("#confirm-warning").is_visible()


def test_list_page_links_campaigns_and_shows_rejections(server, campaigns, page, store):
    page.goto(f"{server}/")
    ids = campaigns[1]
    for cid in ids.values():
        page.locator(f"#campaign-{cid} a").wait_for()
    assert page.locator(f"#campaign-{ids['done']} td").nth(2).inner_text() == "completed"
    page.fill("#spec-text", "name: bad\ntrainer: sleep\ngenerations: -1\n")
    page.click("#submit-button")
    result = page.locator("#submit-result.error")
    result.wait_for()
    assert "422" in result.inner_text() and "generations" in result.inner_text()
    assert len(store.campaigns()) == len(ids)  # nothing stored
    page.click(f"#campaign-{ids['done']} a")
    page.wait_for_url(f"{server}/campaigns/{ids['done']}/view")


def test_static_assets_come_from_the_app(server):
    import importlib.resources

    import httpx

    packaged = Path(str(importlib.resources.files("plotly") / "package_data" / "plotly.min.js")).read_bytes()
    with httpx.Client(base_url=server) as client:
        plotly_js = client.get("/static/plotly.min.js")
        assert plotly_js.status_code == 200 and plotly_js.content == packaged
        again = client.get("/static/plotly.min.js", headers={"If-None-Match": plotly_js.headers["etag"]})
        assert again.status_code == 304
        assert client.get("/static/dashboard.js").status_code == 200  # pages and scripts need no token
        escape = "/static/..%2Fpages_html.py"  # no static route matches it, so the token guard answers first
        assert client.get(escape).status_code == 401
        assert client.get(escape, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404
        assert client.get("/static/app.py").status_code == 404
        assert client.get("/campaigns/1/view").status_code == 200
        assert client.get("/campaigns").status_code == 401  # campaign data does
        page = client.get("/")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "http://" not in page.text and "https://" not in page.text  # nothing from a CDN
