"""`relevo demo`: run the synthetic storefront against a live relevo server.

It configures the demo (catalog, placements, rules, and a fresh experiment
`default` vs `rules` vs `ml` on the `home_recs` placement), lets the shoppers
browse, load pages and react, concurrently, through the real HTTP API, then reads
the experiment's results from the server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx

from relevo.demo.catalog import demo_items
from relevo.demo.storefront import Shopper, Storefront

PLACEMENT = "home_recs"
PLACEMENTS = {
    "placements": [
        {
            "id": PLACEMENT,
            "k": 4,
            "filters": {"in_stock": True, "exclude_purchased": True},
            "diversity": {"max_per_category": 2},
        },
        {
            "id": "home_hero",
            "variants": [
                {"id": "welcome", "content": {"title": "Welcome back"}, "tags": ["generic"]},
                {"id": "mobile-app", "content": {"title": "Get the app"}, "tags": ["mobile"]},
            ],
            "default": "welcome",
        },
    ]
}
RULES = {
    "rules": [
        {
            "id": "favourite-category-first",
            "trigger": {"on": "decide", "placement": PLACEMENT},
            "then": [
                {
                    "boost": "item.category in profile.affinities && "
                    "profile.affinities[item.category] > 2.0",
                    "by": 10.0,
                }
            ],
        },
        {
            "id": "mobile-hero",
            "trigger": {"on": "decide", "placement": "home_hero"},
            "when": "context.device == 'mobile'",
            "then": [{"variant": "mobile-app"}],
        },
        {
            "id": "cart-abandoned",
            "trigger": {"after": "add_to_cart", "inactive_for": "15m", "unless": ["purchase"]},
            "then": [{"emit": "cart_abandoned", "payload": {"offer": "free shipping"}}],
        },
    ]
}


class Demo:
    def __init__(
        self,
        url: str,
        *,
        users: int,
        pages: int,
        seed: int,
        concurrency: int,
        admin_key: str | None,
        write_key: str | None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.users = users
        self.pages = pages
        self.concurrency = concurrency
        self.store = Storefront(seed)
        self.experiment = f"demo-{int(time.time())}"
        self.admin = {"Authorization": f"Bearer {admin_key}"} if admin_key else {}
        self.write = (
            {"Authorization": f"Bearer {write_key or admin_key}"}
            if (write_key or admin_key)
            else {}
        )
        self.progress = progress or (lambda _: None)
        self.requests = 0

    async def run(self) -> dict[str, Any]:
        limits = httpx.Limits(max_connections=self.concurrency)
        async with httpx.AsyncClient(base_url=self.url, timeout=30, limits=limits) as client:
            await self._setup(client)
            queue: asyncio.Queue[int] = asyncio.Queue()
            for number in range(self.users):
                queue.put_nowait(number)
            await asyncio.gather(*(self._worker(client, queue) for _ in range(self.concurrency)))
            return await self._results(client)

    async def _call(self, client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> Any:
        for attempt in range(6):
            response = await client.request(method, path, **kwargs)
            self.requests += 1
            if response.status_code in (429, 503) and attempt < 5:
                await asyncio.sleep(0.2 * 2**attempt)
                continue
            if response.status_code >= 400:
                raise RuntimeError(
                    f"{method} {path} → {response.status_code}: {response.text[:300]}"
                )
            return response.json()
        raise RuntimeError(f"{method} {path}: the server stayed unavailable")

    async def _setup(self, client: httpx.AsyncClient) -> None:
        await self._call(
            client, "POST", "/v1/items", json={"items": demo_items()}, headers=self.admin
        )
        await self._call(client, "PUT", "/v1/placements", json=PLACEMENTS, headers=self.admin)
        await self._call(client, "PUT", "/v1/rules", json=RULES, headers=self.admin)
        experiment = {
            "placement": PLACEMENT,
            "control": "default",
            "salt": self.experiment,
            "arms": [
                {"name": "default", "policy": "default"},
                {"name": "rules", "policy": "rules"},
                {"name": "ml", "policy": "ml"},
            ],
        }
        await self._call(
            client, "PUT", f"/v1/experiments/{self.experiment}", json=experiment, headers=self.admin
        )

    async def _worker(self, client: httpx.AsyncClient, queue: asyncio.Queue[int]) -> None:
        while not queue.empty():
            number = queue.get_nowait()
            await self._shop(client, self.store.shopper(number))
            self.progress(1)

    async def _send(self, client: httpx.AsyncClient, events: list[dict[str, Any]]) -> None:
        if events:
            await self._call(
                client, "POST", "/v1/events", json={"events": events}, headers=self.write
            )

    async def _shop(self, client: httpx.AsyncClient, shopper: Shopper) -> None:
        context = {"device": shopper.device, "country": "FR"}
        await self._send(
            client,
            [self.store.event(shopper, "view", self.store.browse(shopper)) for _ in range(3)],
        )
        for _ in range(self.pages):
            decision = await self._call(
                client,
                "POST",
                "/v1/decide",
                json={"user_id": shopper.user_id, "placement": PLACEMENT, "context": context},
                headers=self.write,
            )
            shown = [item["item_id"] for item in decision.get("items", [])]
            events = [
                self.store.event(shopper, kind, item_id, decision_id=decision["decision_id"])
                for kind, item_id in self.store.react(shopper, shown)
            ]
            events.append(self.store.event(shopper, "view", self.store.browse(shopper)))
            await self._send(client, events)

    async def _results(self, client: httpx.AsyncClient) -> dict[str, Any]:
        found = await self._call(
            client, "GET", f"/v1/experiments/{self.experiment}", headers=self.admin
        )
        results = found["results"]
        p_values = {c["arm"]: c["p_value"] for c in results["comparisons"] if c["metric"] == "ctr"}
        arms = {}
        for arm in results["arms"]:
            arms[arm["name"]] = {
                "users": arm["users"],
                "exposures": arm["exposures"],
                "ctr": arm["ctr"]["value"],
                "conversion": arm["conversion_rate"]["value"],
                "p_value_vs_control": p_values.get(arm["name"]),
            }
        return {"experiment": self.experiment, "arms": arms, "srm": results["srm"]}
