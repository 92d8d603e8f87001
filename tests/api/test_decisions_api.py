"""Decisions, placements, experiments and flags over HTTP."""

from __future__ import annotations

from tests.api.conftest import Api

PLACEMENT = {"variants": [{"id": "A", "content": {"title": "Hi"}}, {"id": "B"}], "default": "A"}


def test_placements_decide_and_results(api: Api) -> None:
    client = api.client
    assert client.put("/v1/placements/api_hero", json=PLACEMENT).status_code == 200
    again = client.put("/v1/placements/api_hero", json=PLACEMENT).json()
    assert again["changed"] is False
    experiment = {
        "placement": "api_hero",
        "arms": [{"name": "a", "variant": "A"}, {"name": "b", "variant": "B"}],
    }
    assert client.put("/v1/experiments/api-exp", json=experiment).status_code == 200
    answer = client.post("/v1/decide", json={"user_id": "api-user", "placement": "api_hero"})
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) >= {
        "decision_id",
        "placement",
        "variant",
        "reasons",
        "arm",
        "versions",
        "fallback",
    }
    assert body["variant"]["id"] == {"a": "A", "b": "B"}[body["arm"]]
    results = client.get("/v1/experiments/api-exp").json()
    assert {arm["name"] for arm in results["results"]["arms"]} == {"a", "b"}
    assert client.post("/v1/experiments/api-exp/stop").json()["changed"] is True
    after = client.post("/v1/decide", json={"user_id": "api-user", "placement": "api_hero"}).json()
    assert after["experiment"] is None


def test_decide_errors(api: Api) -> None:
    missing = api.client.post("/v1/decide", json={"user_id": "u", "placement": "nope"})
    assert missing.status_code == 404
    assert missing.json()["error"]["field"] == "placement"
    bad = api.client.post("/v1/decide", json={"placement": "nope"})
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "user_id"
    wrong = api.client.put("/v1/placements/x", json={"variants": [{"id": "A"}], "default": "Z"})
    assert wrong.status_code == 422
    assert wrong.json()["error"]["field"] == "body"  # the entry sent, not placements[n]
    deeper = api.client.put("/v1/placements/x", json={"variants": [{"id": ""}], "default": ""})
    assert deeper.status_code == 422
    assert deeper.json()["error"]["field"].startswith("variants[0]")


def test_flags_over_http(api: Api) -> None:
    flags = {
        "flags": [
            {
                "key": "dark",
                "default": False,
                "rules": [{"when": "context.device == 'mobile'", "value": True}],
            }
        ]
    }
    assert api.client.put("/v1/flags", json=flags).status_code == 200
    found = api.client.get("/v1/flags?user_id=u&context.device=mobile").json()
    assert found["flags"] == {"dark": True}
    assert api.client.get("/v1/flags").status_code == 422  # user_id is required
