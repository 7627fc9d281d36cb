"""The console in a real browser: Debian's chromium driven by Playwright (never `playwright install`), against the
real app served by uvicorn on 127.0.0.1, on the shared generated company. Every page is checked with axe-core
(no serious or critical violation) and photographed: the pictures are test artefacts (LEADSCOPE_TEST_ARTIFACTS,
default a temporary folder), committed once under docs/console/ for the README."""

from __future__ import annotations

import csv
import io
import os
import re
import socket
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from leadscope.schema import ENTITY

CHROMIUM = Path("/usr/bin/chromium")
MISSING = (
    f"Debian's chromium is not installed ({CHROMIUM}): `make test` installs it (apt-get install chromium, as root); "
    "the console's browser tests need it"
)

if not CHROMIUM.exists():
    if os.environ.get("CI"):
        raise RuntimeError(MISSING)  # CI must run these
    pytest.skip(MISSING, allow_module_level=True)


@pytest.fixture(scope="module")
def served(prepared, tmp_path_factory):
    """The app under uvicorn in a thread, with an admin key; yields (base URL, key, app)."""
    import uvicorn

    from serving.app import create_app
    from serving.keys import KeyStore

    settings = prepared.settings
    token = KeyStore(settings.database_url).create("console-browser", ["admin"], "1000000/minute")[0]
    app = create_app(settings)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="console-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 180

    def up() -> bool:
        return server.started and getattr(app.state, "serving", None) is not None and app.state.serving.loaded

    while time.monotonic() < deadline and not up():
        time.sleep(0.05)
    assert server.started and app.state.serving.loaded, "server did not start"
    yield f"http://127.0.0.1:{port}", token, app
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory) -> Path:
    path = Path(os.environ.get("LEADSCOPE_TEST_ARTIFACTS") or tmp_path_factory.mktemp("console-artefacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture()
def page(browser, served):
    base, token, _ = served
    context = browser.new_context(base_url=base, accept_downloads=True, viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.goto("/console/leads")
    assert pg.url.endswith("/console/login")  # no page without a session
    pg.get_by_label("API key").fill(token)
    pg.get_by_role("button", name="Log in").click()
    pg.wait_for_url("**/console/leads")
    yield pg
    context.close()


def expect(locator):  # noqa: ANN001, ANN201
    from playwright.sync_api import expect as pw_expect

    return pw_expect(locator)


def _accessible(pg, name: str) -> None:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(pg)
    bad = [v for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]
    assert not bad, f"{name}: " + "; ".join(f"{v['id']}: {v['help']} {[n['target'] for n in v['nodes']]}" for v in bad)


def _shot(pg, artefacts: Path, name: str) -> None:
    pg.screenshot(path=str(artefacts / f"{name}.png"), full_page=True)


def test_lookalike_from_an_uploaded_seed_with_insight_and_a_meta_export(page, prepared, artefacts, tmp_path) -> None:
    # broken: a marketer cannot get from a seed file to an audience, its insight and a file Meta accepts
    settings = prepared.settings
    stages = pd.read_parquet(settings.raw_dir / "stages.parquet")
    won = sorted(set(stages.loc[stages["stage"] == "won", ENTITY].astype(str)))[:300]
    assert len(won) >= 150, "too few converted customers in the generated company"
    seed = tmp_path / "seed.csv"
    seed.write_text("customer_id\n" + "\n".join(won) + "\n")

    page.get_by_role("link", name="Audiences").click()
    page.wait_for_url("**/console/audiences")
    _accessible(page, "audiences")
    before = page.locator("#estimate").inner_text()
    page.get_by_label("Audience size: percent of the population").fill("5")
    page.locator("#percent").dispatch_event("input")
    expect(page.locator("#estimate")).to_contain_text("5.0 %")  # no eval in the page: its CSP forbids it
    after = page.locator("#estimate").inner_text()
    assert before != after and "expected reach" in after and "expected conversions" in after  # htmx swapped it
    _shot(page, artefacts, "audience-builder")
    page.get_by_label(re.compile("Seed CSV")).set_input_files(str(seed))
    page.get_by_label("Name", exact=True).fill("won lookalike")
    page.get_by_role("button", name="Build from seed").click()
    page.wait_for_url(re.compile(r".*/console/audiences/aud_[0-9a-f]+$"), timeout=120_000)
    assert page.get_by_role("heading", name="What sets the audience apart").is_visible()
    lifts = page.locator("table.lift tbody tr")
    assert lifts.count() >= 1
    assert page.locator("table.lift svg.bar rect").count() >= 2  # the chart: intervals and points
    page.get_by_label("Two attributes").select_option(index=1)
    page.get_by_role("button", name="Show").click()
    page.wait_for_selector("table.heat")
    assert page.locator("table.heat tbody td").count() >= 2
    _accessible(page, "audience insight")
    _shot(page, artefacts, "audience-insight")

    counts = page.locator("table", has_text="who is left out")
    rows_shown = int(counts.locator("tr", has_text="rows").locator("td").first.inner_text().replace(",", ""))
    with page.expect_download() as dl:
        page.get_by_role("link", name="Download Meta Customer List").click()
    text = Path(dl.value.path()).read_text()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["email", "phone", "fn", "ln", "ct", "st", "zip", "country", "extern_id", "value"]
    assert len(rows) - 1 == rows_shown > 0
    hexed = re.compile(r"^[0-9a-f]{64}$|^$")
    for r in rows[1:]:
        assert all(hexed.match(v) for v in r[:9]), r  # identifiers hashed, never raw
        assert 0 <= float(r[9]) <= 1
    customers = pd.read_parquet(settings.raw_dir / "customers.parquet")
    assert not set(customers["email"].dropna().astype(str)) & set(text.replace("\n", ",").split(","))


def test_lead_lookup_shows_scores_with_reasons_and_next_best_action(page, prepared, artefacts) -> None:
    # broken: a sales manager cannot see why a lead is hot
    customers = pd.read_parquet(prepared.settings.raw_dir / "customers.parquet")
    cid = str(customers[ENTITY].iloc[7])
    page.get_by_label("Customer id, e-mail or phone").fill(cid)
    page.get_by_role("button", name="Look up").click()
    page.wait_for_selector(f"text=Customer {cid}")
    assert page.url.endswith(f"q={cid}")  # htmx pushed the address: the result can be shared and reloaded
    card = page.locator("article", has=page.get_by_role("heading", name="Propensity"))
    assert re.search(r"\b(A|B|C|D|E)\b", card.locator(".grade").inner_text())
    assert card.locator("table.waterfall tbody tr").count() == 3
    assert page.get_by_role("heading", name="Next best action").is_visible()
    assert page.get_by_role("heading", name="Social graph").is_visible()
    html = page.content()
    email = str(customers["email"].iloc[7])
    assert email not in html  # no raw personal data on the page
    _accessible(page, "lead lookup")
    _shot(page, artefacts, "lead-lookup")
    # the same lead through its e-mail (hashed index): same customer, still no raw e-mail on the page
    page.get_by_label("Customer id, e-mail or phone").fill(email.upper())
    page.get_by_role("button", name="Look up").click()
    page.wait_for_selector(f"text=Customer {cid}")
    assert email.lower() not in page.content().lower()


def test_model_card_and_signals_pages(page, prepared, artefacts) -> None:
    # broken: a data scientist cannot see a model's versions, metrics, champion and drift
    from training import monitoring

    monitoring.monitor(prepared.settings, "propensity")  # a `leadscope monitor` run: its PSI shows on the card
    page.get_by_role("link", name="Model cards").click()
    page.wait_for_url("**/console/models")
    page.get_by_label("Model").select_option("propensity")
    page.get_by_role("button", name="Show").click()
    table = page.locator("table", has_text="Versions")
    assert "champion" in table.inner_text()
    assert table.locator("tbody tr").count() >= 1
    drift = page.locator("table", has_text="PSI per feature")
    assert drift.locator("tbody tr").count() >= 5
    assert page.locator(".plots img").count() >= 1
    page.wait_for_load_state("load")
    src = page.locator(".plots img").first.get_attribute("src")
    got = page.request.get(src)
    assert got.status == 200 and got.headers["content-type"] == "image/png" and got.body()[:4] == b"\x89PNG"
    assert page.locator(".plots img").first.evaluate("img => img.naturalWidth") > 0  # the logged plot shows
    _accessible(page, "model card")
    _shot(page, artefacts, "model-card")
    page.get_by_role("link", name="Signals").click()
    page.wait_for_url("**/console/signals")
    assert page.get_by_role("heading", name="Conversion signals per platform").is_visible()
    _accessible(page, "signals")
    _shot(page, artefacts, "signals")
    page.goto("/console/login")
    _accessible(page, "login")


def test_pages_read_without_javascript_and_the_search_works_from_the_keyboard(browser, served, prepared) -> None:
    # broken: a page needs JavaScript to show anything, or a keyboard user cannot reach the search
    base, token, _ = served
    context = browser.new_context(base_url=base, java_script_enabled=False)
    pg = context.new_page()
    pg.goto("/console/login")
    pg.get_by_label("API key").fill(token)
    pg.get_by_label("API key").press("Enter")  # a plain form post
    pg.wait_for_url("**/console/leads")
    cid = str(pd.read_parquet(prepared.settings.raw_dir / "customers.parquet")[ENTITY].iloc[11])
    pg.goto(f"/console/leads?q={cid}")
    card = pg.locator("article", has=pg.get_by_role("heading", name="Propensity"))
    assert card.locator("table.waterfall tbody tr").count() == 3
    pg.goto("/console/audiences")
    assert "expected reach" in pg.locator("#estimate").inner_text()  # the estimate is rendered, not fetched
    pg.goto("/console/models")
    assert pg.locator("table", has_text="Versions").count() == 1
    context.close()

    context = browser.new_context(base_url=base)
    pg = context.new_page()
    pg.goto("/console/login")
    pg.keyboard.press("Tab")
    assert pg.locator(":focus").inner_text() == "Skip to content"
    _tab_to(pg, "#api_key", 3)
    pg.keyboard.type(token)
    pg.keyboard.press("Enter")
    pg.wait_for_url("**/console/leads")
    _tab_to(pg, "#q", 12)
    pg.keyboard.type(cid)
    pg.keyboard.press("Enter")
    pg.wait_for_selector(f"text=Customer {cid}")
    context.close()


def _tab_to(pg, selector: str, most: int) -> None:  # noqa: ANN001
    """Press Tab until `selector` has the focus (at most `most` times)."""
    for _ in range(most):
        if pg.locator(f"{selector}:focus").count():
            break
        pg.keyboard.press("Tab")
    assert pg.locator(f"{selector}:focus").count() == 1, f"{selector} not reached with Tab"
