"""Training from the archive: no train/serve skew, versions with metrics, promotion, rollback."""

from __future__ import annotations

import json

import numpy as np
import pytest

from relevo.clock import ManualClock
from relevo.engine import Engine
from relevo.errors import InvalidInput, NotFound
from relevo.models import training_data
from relevo.models.profile_features import ProfileReplay, pair_features
from tests.serving.conftest import EngineFactory, with_catalog, with_traffic


async def test_replaying_the_archive_gives_the_live_profiles(
    engine: Engine, clock: ManualClock
) -> None:
    await with_traffic(engine, clock, users=25)
    data = training_data.load(engine.settings.archive_path)
    assert data.counts()["users"] == 25
    assert data.counts()["catalog_items"] == 240
    replay = ProfileReplay(data.records, engine.params)
    items = ["sho-001", "boo-002", "kit-003"]
    categories = ["shoes", "books", "kitchen"]
    for user in ("shopper-0", "shopper-7", "shopper-24"):
        live = await engine.profile(user)
        assert live is not None
        assert replay.profile_at(user, clock.now_ms()) == live
        np.testing.assert_array_equal(
            pair_features(live, items, categories),
            pair_features(replay.profile_at(user, clock.now_ms()), items, categories),
        )


async def test_a_trained_hybrid_serves_with_its_version(engine: Engine, clock: ManualClock) -> None:
    await with_traffic(engine, clock, users=60)
    meta = await engine.train_model("relevo", promote=True)
    assert meta["version"] == "v1"
    assert meta["kind"] == "hybrid"
    assert meta["params"]["pair_feature_names"]
    assert meta["metrics"]["evaluated_users"] > 0
    assert 0 < meta["metrics"]["holdout"]["ndcg@20"] <= 1
    assert meta["training_window"]["from"] < meta["training_window"]["to"]
    assert meta["counts"]["interactions"] > 0
    folder = engine.settings.models_path / "relevo" / "v1"
    assert json.loads((folder / "meta.json").read_text())["name"] == "relevo"
    assert not list(folder.rglob("*.pkl"))
    assert not list(folder.rglob("*.pickle"))
    found = await engine.recommend("shopper-3", 10)
    assert found.model_version == "v1"
    assert not found.fallback
    assert any(
        r.source == "model" and r.model_version == "v1" for i in found.items for r in i.reasons
    )
    similar = await engine.similar_items("sho-003", 5)
    assert any(r.source == "model_similar" for i in similar.items for r in i.reasons)
    [listing] = await engine.model_versions("relevo")
    assert listing["active"] == listing["served"] == "v1"
    assert listing["versions"][0]["promoted_at"] is not None


async def test_promote_and_rollback_switch_the_served_version(
    make_engine: EngineFactory, clock: ManualClock
) -> None:
    engine = await make_engine(serving_model="popularity")
    await with_traffic(engine, clock, users=20)
    first = await engine.train_model("popularity")
    second = await engine.train_model("popularity")
    assert (first["version"], second["version"]) == ("v1", "v2")
    assert (await engine.recommend("shopper-1", 3)).model_version is None  # none promoted
    await engine.promote_model("popularity", "v1")
    assert (await engine.recommend("shopper-1", 3)).model_version == "v1"
    await engine.promote_model("popularity", "v2")
    assert (await engine.recommend("shopper-1", 3)).model_version == "v2"
    back = await engine.rollback_model("popularity")
    assert back == {"name": "popularity", "version": "v1", "previous": "v2"}
    assert (await engine.recommend("shopper-1", 3)).model_version == "v1"
    with pytest.raises(NotFound):  # v2 was rolled back, v1 is served: nothing earlier
        await engine.rollback_model("popularity")
    with pytest.raises(NotFound):
        await engine.promote_model("popularity", "v9")
    [listing] = await engine.model_versions("popularity")
    assert [(v["version"], v["active"], v["rolled_back"]) for v in listing["versions"]] == [
        ("v1", True, False),
        ("v2", False, True),
    ]


async def test_other_processes_and_restarts_follow_the_promoted_version(
    make_engine: EngineFactory, clock: ManualClock
) -> None:
    engine = await make_engine(serving_model="popularity")
    await with_traffic(engine, clock, users=20)
    await engine.train_model("popularity", promote=True)
    await engine.train_model("popularity", promote=True)
    if engine.store.backend == "redis":
        other = await make_engine(serving_model="popularity")  # another API process
        assert (await other.recommend("shopper-1", 3)).model_version == "v2"
        await engine.rollback_model("popularity")
        await other.models.refresh()  # what its background job does every second
        assert (await other.recommend("shopper-1", 3)).model_version == "v1"
    else:
        await engine.rollback_model("popularity")
        await engine.stop()
        restarted = await make_engine(serving_model="popularity")  # replays the log
        assert (await restarted.recommend("shopper-1", 3)).model_version == "v1"
        assert (await restarted.train_model("popularity"))["version"] == "v3"


async def test_training_without_data_says_what_is_missing(engine: Engine) -> None:
    await with_catalog(engine)
    with pytest.raises(InvalidInput, match="interactions"):
        await engine.train_model("relevo")
    with pytest.raises(InvalidInput, match="exposures"):
        await engine.train_model("propensity")
    with pytest.raises(NotFound, match="trainable"):
        await engine.train_model("nope")
