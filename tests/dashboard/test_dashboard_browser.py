"""The dashboard in a real browser (Debian's headless Chromium via Playwright) against the real
service: each page loads, a user is searched, models are switched, the diversity knob moves the
list, an experiment report opens, the Live page refreshes by itself — without a console error,
an uncaught exception or a request outside the service (the `page` fixture checks those)."""

from __future__ import annotations

import re
import uuid

import httpx
from playwright.sync_api import expect

API_KEY = "demo-key"  # the demo's write key (tastemaker.serving.dashboard.demo)


def _ids(page, model: str) -> list[str]:
    return page.locator(f'article[data-model="{model}"] li.rec').evaluate_all(
        "els => els.map(e => e.getAttribute('data-item'))")


def test_user_explorer_search_switch_models_and_diversity(page, screenshot):
    page.goto("/dashboard/users")
    expect(page.get_by_role("heading", name="Choose a user")).to_be_visible()
    results = page.locator("#user-results")
    expect(results).to_have_attribute("aria-live", "polite")

    # search a user: type the id, press Enter; the lists arrive without a page load
    page.evaluate("window.__noReload = true")
    page.get_by_label("User id").fill("1")
    page.get_by_label("User id").press("Enter")
    expect(page.get_by_role("heading", name="User 1")).to_be_visible()
    assert page.evaluate("window.__noReload") is True, "the form reloaded the page instead of fetching the results"
    expect(page.locator("article.model-list")).to_have_count(2)
    expect(page.locator('article[data-model="ease"] li.rec')).to_have_count(10)
    expect(page.locator('article[data-model="item_cf"] li.rec')).to_have_count(10)
    expect(page.locator('article[data-model="ease"] .reason').first).to_contain_text("because you rated")
    expect(page.locator(".history tbody tr").first).to_be_visible()
    assert "user=1" in page.url

    # change k
    page.get_by_label("Items (k)").fill("5")
    page.get_by_label("Items (k)").press("Enter")
    expect(page.locator('article[data-model="ease"] li.rec')).to_have_count(5)
    page.get_by_label("Items (k)").fill("10")
    page.get_by_label("Items (k)").press("Enter")
    expect(page.locator('article[data-model="ease"] li.rec')).to_have_count(10)

    # switch a model off and on again
    page.get_by_role("checkbox", name="item_cf").uncheck()
    expect(page.locator("article.model-list")).to_have_count(1)
    expect(page.locator('article[data-model="item_cf"]')).to_have_count(0)
    page.get_by_role("checkbox", name="item_cf").check()
    expect(page.locator("article.model-list")).to_have_count(2)

    # move the diversity knob with the keyboard: λ 1.00 → 0.30 re-ranks the lists by MMR
    before = _ids(page, "ease")
    knob = page.get_by_label("Diversity: MMR λ")
    knob.focus()
    for _ in range(14):
        knob.press("ArrowLeft")
    expect(page.locator("#lambda-out")).to_have_text("0.30")
    expect(page.locator("#recs-summary")).to_contain_text("λ = 0.30")
    after = _ids(page, "ease")
    assert after != before and len(after) == 10
    expect(page.locator('article[data-model="ease"] ol.trace li').first).to_contain_text("diversified (MMR λ=0.3")
    assert "lambda=0.3&" in page.url

    # another rule set: the family-friendly boosts show in the traces
    page.get_by_label("Rule set").select_option("family-friendly.toml")
    expect(page.locator("#recs-summary")).to_contain_text("family-friendly.toml")
    expect(page.locator('article[data-model="ease"] ol.trace').filter(has_text="family-up").first).to_be_attached()

    # open the rule trace of the first item with the keyboard
    summary = page.locator('article[data-model="ease"] li.rec').nth(1).locator("summary")
    summary.focus()
    summary.press("Enter")
    expect(page.locator('article[data-model="ease"] li.rec').nth(1).locator("ol.trace, .trace-empty")).to_be_visible()
    page.get_by_role("heading", name="Recommendations").scroll_into_view_if_needed()
    screenshot(page, "users")


def test_user_ids_are_suggested_as_you_type(page):
    page.goto("/dashboard/users")
    page.get_by_label("User id").press_sequentially("94", delay=30)
    options = page.locator("#user-ids option")
    expect(options.first).to_have_attribute("value", re.compile(r"^94"))
    values = options.evaluate_all("els => els.map(e => e.value)")
    assert values and all(v.startswith("94") for v in values)
    assert values[0] == "94"  # shortest first


def test_unknown_user_gets_the_fallback_not_an_error(page):
    page.goto("/dashboard/users?user=no-such-user")
    expect(page.get_by_text("No loaded model knows this user")).to_be_visible()
    expect(page.locator('article[data-model="ease"] .notice').first).to_contain_text("unknown_user")
    expect(page.locator('article[data-model="ease"] li.rec')).to_have_count(10)


def test_item_explorer(page, screenshot):
    page.goto("/dashboard/items")
    page.get_by_label("Item id or title").fill("Star Wars")
    page.get_by_label("Item id or title").press("Enter")
    expect(page.get_by_role("heading", name="Star Wars (1977)")).to_be_visible()
    expect(page.locator("#item-results dl.facts")).to_contain_text("Sci-Fi")
    similar = page.locator("ol.similar").first.locator("li")
    expect(similar).to_have_count(10)
    expect(page.locator("#consumers-caption")).to_contain_text("users")
    expect(page.get_by_role("img", name=re.compile("Ratings of Star Wars"))).to_be_visible()
    screenshot(page, "items")
    # a consumer opens in the user explorer
    first_user = page.locator("#item-results table tbody tr").first.locator("a")
    uid = first_user.inner_text()
    first_user.click()
    expect(page.get_by_role("heading", name=f"User {uid}")).to_be_visible()


def test_models_page_leaderboard_and_registry(page, screenshot):
    page.goto("/dashboard/models")
    expect(page.get_by_role("heading", name="Loaded models")).to_be_visible()
    loaded = page.locator("#loaded-caption").locator("xpath=..")
    expect(loaded.locator("tbody tr")).to_have_count(2)
    chart = page.get_by_role("img", name=re.compile(r"^ndcg@10"))
    expect(chart).to_be_visible()
    expect(chart.locator("rect.bar-ours")).to_have_count(3)
    board = page.locator("table.leaderboard tbody tr")
    expect(board).to_have_count(3)
    expect(board.first.locator("th")).to_have_text("ease")
    expect(page.locator(".badge.alias").filter(has_text="@champion").first).to_be_visible()
    expect(page.locator(".badge.alias").filter(has_text="@challenger").first).to_be_visible()
    screenshot(page, "models")


def test_experiment_report(page, screenshot):
    page.goto("/dashboard/experiments")
    page.get_by_role("link", name="reco-v2", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Experiment reco-v2")
    expect(page.locator(".verdict").first).to_have_text("DON'T SHIP")
    expect(page.locator(".reasons").first).to_contain_text("guardrail AOV fails")
    expect(page.get_by_text("AOV loss comes from category = electronics")).to_be_visible()
    expect(page.get_by_role("img", name=re.compile("Relative lift"))).to_be_visible()
    expect(page.locator("tr.status-fail").first).to_contain_text("AOV")
    screenshot(page, "experiments")
    page.get_by_role("link", name="Open the full report").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("A/B report")


def test_live_page_refreshes_itself(page, server, screenshot):
    with httpx.Client(base_url=server, timeout=10) as client:
        for u in ("1", "2", "3", "unknown-user"):
            assert client.get("/recommendations", params={"user_id": u, "k": 5}).status_code == 200
        events = [{"event_id": uuid.uuid4().hex, "type": "click", "user_id": "1", "item_id": "50"} for _ in range(5)]
        assert client.post("/events/batch", json={"events": events}, headers={"X-API-Key": API_KEY}).status_code == 200
    page.goto("/dashboard/live")
    expect(page.locator(".tile").first).to_be_visible()
    expect(page.locator("#live-panel")).to_contain_text("GET /recommendations")
    stamp = page.locator("#live-window").get_attribute("data-at")
    # the panel reloads on its own every refresh_s seconds
    with httpx.Client(base_url=server, timeout=10) as client:
        client.get("/recommendations", params={"user_id": "4", "k": 5})
    page.wait_for_function("s => document.querySelector('#live-window').getAttribute('data-at') !== s", arg=stamp,
                           timeout=15_000)
    expect(page.locator("#live-panel")).not_to_contain_text("No API requests yet")
    screenshot(page, "live")
    pause = page.get_by_role("button", name="Pause updates")
    pause.click()
    expect(page.get_by_role("button", name="Resume updates")).to_have_attribute("aria-pressed", "true")


def test_keyboard_skip_link_and_landmarks(page):
    page.goto("/dashboard/models")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent.trim()")
    assert focused == "Skip to main content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    expect(page.get_by_role("navigation", name="Dashboard pages")).to_be_visible()
    expect(page.get_by_role("link", name="Models")).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("main")).to_have_count(1)
    # every form control on the user page has a label
    page.goto("/dashboard/users?user=1")
    unlabeled = page.evaluate("""() => [...document.querySelectorAll('input:not([type=hidden]), select')]
        .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.name)""")
    assert unlabeled == []
