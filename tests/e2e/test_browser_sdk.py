"""The JS SDK in headless Chromium against a live `relevo serve`.

The page lives at the server's own origin (`/shop`, its HTML handed to the browser by
Playwright's router so no test page ships in the product); the SDK file and every API
call go to the real server. Chromium is Debian's `/usr/bin/chromium`: nothing is
downloaded. The page decides a placement and renders the variant it gets.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.polling import wait_until
from tests.support.servers import RelevoServer

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (make test)"),
]
WRITE, ADMIN = "pk-browser", "sk-browser"
# Rate limits are per key: the beacon test (a beacon cannot retry a 429) and the 429 test
# each get their own write key, so one test's burst never spends another's tokens.
BEACON_KEY, BURST_KEY = "pk-beacon", "pk-burst"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PAGE = f"""<!doctype html><html><head><title>shop</title>
<script src="/sdk/relevo.js"></script>
<script>relevo.init({{endpoint: location.origin, writeKey: "{WRITE}", flushInterval: 50}});</script>
</head><body><h1>shop</h1></body></html>"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelevoServer]:
    directory = tmp_path_factory.mktemp("browser")
    env = {
        "RELEVO_DATA_DIR": str(directory / "data"),
        "RELEVO_WRITE_KEY": f"{WRITE},{BEACON_KEY},{BURST_KEY}",
        "RELEVO_ADMIN_KEY": ADMIN,
        "RELEVO_DEMO_CATALOG": "true",
        "RELEVO_RATE_LIMIT": "4",
        "RELEVO_RATE_BURST": "4",
    }
    with RelevoServer(env, directory / "server.log") as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=FLAGS
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, server: RelevoServer) -> Iterator[Any]:
    context = browser.new_context()
    opened = context.new_page()
    opened.route(
        server.url + "/shop",
        lambda route: route.fulfill(status=200, content_type="text/html", body=PAGE),
    )
    opened.goto(server.url + "/shop")
    yield opened
    context.close()


def admin_json(server: RelevoServer, path: str) -> Any:
    """The answer to an admin GET, or None when it is not 200 (the server rate-limits every
    key, this one too, at 4 requests/s: a poll loop spends the burst, and a 429 follows)."""
    response = httpx.get(f"{server.url}{path}", headers={"Authorization": f"Bearer {ADMIN}"})
    return response.json() if response.status_code == 200 else None


def admin_put(server: RelevoServer, path: str, body: Any) -> httpx.Response:
    """An admin PUT's answer, retried while it is 429 (see `admin_json`)."""

    def attempt() -> httpx.Response | None:
        headers = {"Authorization": f"Bearer {ADMIN}"}
        response = httpx.put(f"{server.url}{path}", json=body, headers=headers)
        return None if response.status_code == 429 else response

    return wait_until(attempt)


def profile(server: RelevoServer, user: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = admin_json(server, f"/v1/users/{user}")
    return found


def total(found: dict[str, Any] | None, kind: str) -> int:
    return 0 if found is None else int(found["counts"].get(kind, {}).get("total", 0))


def test_track_identify_consent_reach_the_profile(page: Any, server: RelevoServer) -> None:
    anonymous = page.evaluate("relevo.anonymousId()")
    page.evaluate("relevo.track('view', {item_id: 'sho-001'})")
    wait_until(lambda: total(profile(server, anonymous), "view") == 1)
    page.evaluate("relevo.identify('browser-user', {plan: 'pro'})")
    page.evaluate("relevo.consent({personalization: true, analytics: false})")
    page.evaluate("relevo.track('add_to_cart', {item_id: 'sho-001', value: 89.9})")
    page.evaluate("relevo.flush()")
    found = wait_until(
        lambda: (p := profile(server, "browser-user")) and total(p, "add_to_cart") and p
    )
    assert found["consent"] == {"personalization": True, "analytics": False}
    assert total(found, "identify") == 1
    assert [line["item_id"] for line in found["cart"]] == ["sho-001"]
    # the anonymous id survives a reload (first-party localStorage)
    page.reload()
    assert page.evaluate("relevo.anonymousId()") == anonymous
    assert page.evaluate("relevo.userId()") == "browser-user"


def test_segment_payloads_and_the_page_hide_beacon(page: Any, server: RelevoServer) -> None:
    page.evaluate("relevo.identify('segment-user')")
    # nothing is flushed by the timer now: only the page-hide beacon can send the event
    page.evaluate(
        "relevo.init({endpoint: location.origin, "
        f"writeKey: '{BEACON_KEY}', flushInterval: 600000}})"
    )
    page.evaluate(
        """window.beacons = [];
           const send = navigator.sendBeacon.bind(navigator);
           navigator.sendBeacon = (url, body) => { beacons.push(url); return send(url, body); };"""
    )
    page.evaluate(
        """relevo.track({event: 'Product Added', messageId: 'seg-1',
                         properties: {product_id: 'sho-002', price: 10, coupon: 'X'}})"""
    )
    page.evaluate("window.dispatchEvent(new Event('pagehide'))")  # beacon, not fetch
    found = wait_until(
        lambda: (p := profile(server, "segment-user")) and total(p, "add_to_cart") and p,
        timeout=30,  # the beacon is sent by the browser, in its own time
    )
    assert [line["item_id"] for line in found["cart"]] == ["sho-002"]
    # a beacon cannot set headers: the (public) write key rides in the query
    assert page.evaluate("beacons.filter(Boolean)") == [f"{server.url}/v1/events?key={BEACON_KEY}"]
    feed = wait_until(lambda: admin_json(server, "/v1/events/recent"))["events"]
    sent = next(event for event in feed if event["event_id"] == "seg-1")
    assert sent["properties"] == {"price": 10, "coupon": "X"}
    assert sent["context"]["page"] == server.url + "/shop"


def test_429_is_retried_until_every_event_arrives(page: Any, server: RelevoServer) -> None:
    page.evaluate(
        f"relevo.init({{endpoint: location.origin, writeKey: '{BURST_KEY}', maxBatch: 1}})"
    )
    page.evaluate("relevo.identify('burst-user')")
    statuses: list[int] = []
    page.on("response", lambda response: statuses.append(response.status))
    page.evaluate(
        """Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map(
             n => relevo.track('view', {item_id: 'sho-00' + (n % 3 + 1)})))"""
    )
    wait_until(lambda: total(profile(server, "burst-user"), "view") == 8, timeout=20)
    assert 429 in statuses


def test_cookie_fallback_when_local_storage_is_blocked(browser: Any, server: RelevoServer) -> None:
    context = browser.new_context()
    context.add_init_script("Storage.prototype.setItem = () => { throw new Error('blocked'); };")
    blocked = context.new_page()
    blocked.route(
        server.url + "/shop",
        lambda route: route.fulfill(status=200, content_type="text/html", body=PAGE),
    )
    blocked.goto(server.url + "/shop")
    anonymous = blocked.evaluate("relevo.anonymousId()")
    assert f"relevo_aid={anonymous}" in blocked.evaluate("document.cookie")
    cookies = context.cookies()
    assert {cookie["name"] for cookie in cookies} == {"relevo_aid"}
    assert all(cookie["sameSite"] == "Lax" for cookie in cookies)
    context.close()


HERO = {
    "id": "home_hero",
    "variants": [
        {"id": "A", "content": {"title": "Welcome"}},
        {"id": "B", "content": {"title": "Summer sale"}, "tags": ["sale"]},
    ],
    "default": "A",
    "policy": "rules",
}
INSTAGRAM_MOBILE = {
    "id": "instagram-mobile",
    "trigger": {"on": "decide", "placement": "home_hero"},
    "when": 'context.device == "mobile" && context.referrer.contains("instagram")',
    "then": [{"variant": "B"}],
}
CONTEXT = {"page": "/", "device": "mobile", "referrer": "https://www.instagram.com/p/1"}
RENDER = """context => relevo.decide('home_hero', context, {k: 3}).then(decision => {
  document.querySelector('#hero')?.remove();
  const banner = document.createElement('div');
  banner.id = 'hero';
  banner.dataset.decision = decision.decision_id;
  banner.textContent = decision.variant.content.title;
  document.body.appendChild(banner);
  return decision;
})"""


def test_decide_renders_the_variant_and_the_click_is_credited(
    page: Any, server: RelevoServer
) -> None:
    put = admin_put(server, "/v1/placements", {"placements": [HERO]})
    assert put.status_code == 200, put.text
    rules = admin_put(server, "/v1/rules", {"rules": [INSTAGRAM_MOBILE]})
    assert rules.status_code == 200, rules.text
    requests: list[Any] = []
    page.on("request", lambda request: requests.append(request))
    page.evaluate("relevo.identify('decider')")
    decision = page.evaluate(RENDER, CONTEXT)
    # what a person sees: the variant the rule chose for mobile visitors from Instagram
    assert page.text_content("#hero") == "Summer sale"
    assert decision["variant"]["id"] == "B"
    assert decision["fallback"] is False
    decide = next(r for r in requests if r.url.endswith("/v1/decide"))
    assert decide.headers["authorization"] == f"Bearer {WRITE}"
    assert json.loads(decide.post_data) == {
        "user_id": "decider",
        "placement": "home_hero",
        "context": CONTEXT,
        "k": 3,
    }
    page.evaluate(RENDER, {**CONTEXT, "device": "desktop"})
    assert page.text_content("#hero") == "Welcome"  # the default, for everyone else
    # a click on the banner carries the decision id; the server credits it to the variant
    page.evaluate(
        """relevo.track('click', {item_id: 'A',
                                  decision_id: document.querySelector('#hero').dataset.decision})"""
    )
    page.evaluate("relevo.flush()")
    found = wait_until(lambda: total(profile(server, "decider"), "click") == 1)
    assert found
    outcome = page.evaluate(
        "relevo.decide('nowhere', {}).then(() => 'resolved', error => error.status)"
    )
    assert outcome == 404  # an unknown placement is an error the page can handle
