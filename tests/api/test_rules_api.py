"""Rules over HTTP: testing a rule set changes nothing; rollback with and without a version."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api

KITCHEN = {
    "id": "kitchen-fan",
    "trigger": {"on": "view"},
    "when": "profile.category_counts.view['kitchen']['5m'] >= 2",
    "then": [{"add_segment": "kitchen-fan"}, {"emit": "kitchen_offer", "payload": {"n": 1}}],
}


def view(user: str, event_id: str) -> dict[str, Any]:
    return {"type": "view", "user_id": user, "event_id": event_id, "category": "kitchen"}


def put_rules(api: Api, rules: list[dict[str, Any]]) -> str:
    response = api.client.put("/v1/rules", json={"rules": rules})
    assert response.status_code == 200, response.text
    version: str = response.json()["version"]
    return version


def test_an_event_tested_on_a_stored_user_fires_but_changes_nothing(api: Api) -> None:
    """Rules given in the body run on the user's stored profile as if the event came:
    what would fire and be emitted is answered; the profile, the outbox and the log stay."""
    api.client.post("/v1/events", json=view("tester-1", "tester-1-a"))
    before = api.fingerprint()
    body = {"rules": [KITCHEN], "user_id": "tester-1", "event": view("tester-1", "tester-1-b")}
    response = api.client.post("/v1/rules/test", json=body)
    assert response.status_code == 200, response.text
    found = response.json()
    assert found["event"]["fired"] == ["kitchen-fan"]
    assert found["event"]["segments"] == ["kitchen-fan"]
    assert [action["type"] for action in found["event"]["actions"]] == ["kitchen_offer"]
    explained = {entry["rule_id"]: entry for entry in found["explain"]}
    assert explained["kitchen-fan"]["matched"] is True
    assert api.fingerprint() == before
    assert api.client.get("/v1/users/tester-1").json()["segments"] == []


def test_an_event_tested_on_a_given_profile(api: Api) -> None:
    """A profile document instead of a user: the rules see it as it is given."""
    counts = {"view": {"kitchen": {"5m": 5}}}
    body = {"rules": [KITCHEN], "profile": {"category_counts": counts}, "event": view("x", "x-1")}
    found = api.client.post("/v1/rules/test", json=body).json()
    assert found["event"]["fired"] == ["kitchen-fan"]
    quiet = {**body, "profile": {"category_counts": {"view": {"kitchen": {"5m": 0}}}}}
    assert api.client.post("/v1/rules/test", json=quiet).json()["event"]["fired"] == []


def test_a_bad_rule_test_names_the_field(api: Api) -> None:
    before = api.fingerprint()
    response = api.client.post("/v1/rules/test", json={"user_id": "x", "placement": 3})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "placement"
    response = api.client.post("/v1/rules/test", json=["not", "an", "object"])
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "body"
    assert api.fingerprint() == before


def test_rollback_to_the_previous_or_a_named_version(api: Api) -> None:
    first = put_rules(api, [KITCHEN])
    second = put_rules(api, [{**KITCHEN, "when": "true"}])
    rolled = api.client.post("/v1/rules/rollback")  # no body: the previous one
    assert rolled.json() == {"version": first, "previous": second}
    named = api.client.post("/v1/rules/rollback", json={"version": second})
    assert named.json() == {"version": second, "previous": first}
    assert api.client.get("/v1/rules/versions").json()["active"] == second


def test_a_bad_rollback_names_the_version_and_changes_nothing(api: Api) -> None:
    put_rules(api, [KITCHEN])
    before = api.fingerprint()
    for body in ({"version": 3}, ["v1"]):
        response = api.client.post("/v1/rules/rollback", json=body)
        assert response.status_code == 422
        assert response.json()["error"]["field"] == "version"
    missing = api.client.post("/v1/rules/rollback", json={"version": "v999"})
    assert missing.status_code == 404
    assert missing.json()["error"]["field"] == "version"
    assert api.fingerprint() == before


def test_a_placement_tested_on_catalog_and_given_items(api: Api) -> None:
    """Decision rules over candidates named by id (read from the catalog) or given whole:
    what stays, in what order, and what was removed by which rule."""
    catalog = api.client.get("/v1/items?limit=3").json()["items"]
    first, second, third = (item["item_id"] for item in catalog)
    rules = [
        {
            "id": "no-third",
            "trigger": {"on": "decide", "placement": "home_recs"},
            "when": "context.device == 'mobile'",
            "then": [{"filter": f"item.item_id != '{third}'"}, {"bury": "item.price > 1000.0"}],
        }
    ]
    given = {"item_id": "pricey", "category": "x", "price": 5000.0, "in_stock": True}
    body = {
        "rules": rules,
        "profile": {},
        "placement": "home_recs",
        "context": {"device": "mobile"},
        "items": [given, first, second, third],
    }
    found = api.client.post("/v1/rules/test", json=body).json()["decision"]
    assert found["applied"] == ["no-third"]
    assert found["items"] == [first, second, "pricey"]
    assert found["removed"] == {third: "no-third"}
    desktop = {**body, "context": {"device": "desktop"}}
    found = api.client.post("/v1/rules/test", json=desktop).json()["decision"]
    assert found["items"] == ["pricey", first, second, third]

    unknown = api.client.post("/v1/rules/test", json={**body, "items": ["none-such"]})
    assert unknown.status_code == 422
    assert unknown.json()["error"]["field"] == "items"
