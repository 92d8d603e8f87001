"""The answer cache's memory budget: weights are counted once and released on the way out."""

from __future__ import annotations

from relevo.serving.cache import AnswerCache


def test_weight_is_counted_once_per_key_and_released_by_expiry() -> None:
    cache: AnswerCache[list[int]] = AnswerCache(ttl_ms=100, max_weight=10, weigh=len)
    cache.put("a", [1, 2, 3], now_ms=0)
    cache.put("a", [1, 2], now_ms=10)  # replaced, not added
    cache.put("b", [1, 2, 3, 4], now_ms=20)
    assert (len(cache), cache.weight) == (2, 6)
    assert cache.get("a", now_ms=110) is None  # expired: its weight leaves with it
    assert cache.weight == 4
    cache.put("c", [1], now_ms=500)  # "b" expired meanwhile
    assert (len(cache), cache.weight) == (1, 1)


def test_the_oldest_answers_leave_to_keep_within_budget() -> None:
    cache: AnswerCache[list[int]] = AnswerCache(ttl_ms=1_000, max_weight=10, weigh=len)
    for number, key in enumerate("abcd"):
        cache.put(key, [0] * 4, now_ms=number)
    assert [cache.get(key, now_ms=5) is not None for key in "abcd"] == [False, False, True, True]
    assert cache.weight == 8
    cache.put("huge", [0] * 50, now_ms=6)  # over budget alone: kept, and alone
    assert (len(cache), cache.weight) == (1, 50)
