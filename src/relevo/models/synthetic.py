"""Synthetic interactions with a known structure, for tests and benches.

Users have hidden tastes over item topics; they pick a topic from their taste,
then an item of that topic with a Zipf-like popularity, at increasing times.
So the right answer is known: a good recommender proposes unseen items of a
user's favourite topics, and popularity alone cannot (it ignores topics).
No real dataset is needed, so CI never depends on a licence or a download.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from relevo.models.interactions import IntArray, Interactions

HOUR_MS = 3_600_000
EVENT_TYPES: tuple[str, ...] = ("view", "click", "add_to_cart", "purchase")
EVENT_SHARES: tuple[float, ...] = (0.7, 0.2, 0.07, 0.03)


@dataclass(frozen=True)
class SyntheticData:
    """The interactions and the hidden truth that generated them."""

    interactions: Interactions
    user_topics: IntArray  # each user's favourite topic
    item_topics: IntArray  # each item's topic


def latent_tastes(
    n_users: int = 1000,
    n_items: int = 200,
    n_interactions: int = 20_000,
    *,
    n_topics: int = 10,
    concentration: float = 0.1,
    zipf: float = 1.0,
    with_text: bool = False,
    seed: int = 0,
) -> SyntheticData:
    """Generate interactions from users with Dirichlet(`concentration`) topic tastes.

    A small `concentration` makes tastes sharp (one or two topics per user).
    `with_text` gives items a text ``"topic_<t> ..."`` for content models.
    """
    rng = np.random.default_rng(seed)
    item_topics = rng.integers(0, n_topics, n_items)
    # The first items cover every topic once, so no topic is empty when items suffice.
    covered = min(n_topics, n_items)
    item_topics[:covered] = np.arange(covered)
    tastes = rng.dirichlet(np.full(n_topics, concentration), size=n_users)
    # Every user gets at least 2 interactions so every user can be split and evaluated.
    extra = max(n_interactions - 2 * n_users, 0)
    activity = rng.lognormal(0.0, 1.0, n_users)
    counts = (2 + rng.multinomial(extra, activity / activity.sum())).astype(np.int64)
    users = np.repeat(np.arange(n_users, dtype=np.int64), counts)
    topics = _sample_rows(rng, tastes, users)
    items = _sample_items_of_topics(rng, item_topics, n_topics, topics, zipf)
    start = rng.integers(0, 90 * 24 * HOUR_MS, n_users)
    gaps = rng.exponential(2 * HOUR_MS, len(users)).astype(np.int64) + 1
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    cum = np.cumsum(gaps)
    times = start[users] + cum - cum[first][users] + 1_700_000_000_000
    types = rng.choice(len(EVENT_TYPES), len(users), p=EVENT_SHARES)
    text = None
    if with_text:
        text = tuple(f"topic_{t} item {i % 7}" for i, t in enumerate(item_topics.tolist()))
    data = Interactions.from_indices(
        users,
        items,
        times,
        n_users=n_users,
        n_items=n_items,
        types=types,
        type_names=EVENT_TYPES,
        item_text=text,
    )
    return SyntheticData(data, np.argmax(tastes, axis=1).astype(np.int64), item_topics)


def _sample_rows(rng: np.random.Generator, probs: np.ndarray, rows: IntArray) -> IntArray:
    """One categorical draw from ``probs[r]`` for each r in `rows` (inverse CDF, vectorised)."""
    n_rows, n_cols = probs.shape
    cdf = np.cumsum(probs, axis=1)
    cdf /= cdf[:, -1:]
    flat = (cdf + np.arange(n_rows)[:, None]).ravel()
    draws = rows + rng.random(len(rows)) * (1 - 1e-9)
    pos = np.searchsorted(flat, draws, side="right")
    drawn: IntArray = np.minimum(pos - rows * n_cols, n_cols - 1).astype(np.int64)
    return drawn


def _sample_items_of_topics(
    rng: np.random.Generator,
    item_topics: IntArray,
    n_topics: int,
    topics: IntArray,
    zipf: float,
) -> IntArray:
    """An item of each requested topic, popular items (low rank in topic) more often."""
    order = np.argsort(item_topics, kind="stable")
    sizes = np.bincount(item_topics, minlength=n_topics)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    rank_in_topic = np.arange(len(order)) - starts[item_topics[order]]
    weight = 1.0 / np.power(rank_in_topic + 1.0, zipf)
    cdf = np.zeros(len(order))
    for t in range(n_topics):
        sl = slice(starts[t], starts[t] + sizes[t])
        if sizes[t]:
            w = np.cumsum(weight[sl])
            cdf[sl] = w / w[-1] + t
    draws = topics + rng.random(len(topics)) * (1 - 1e-9)
    pos = np.searchsorted(cdf, draws, side="right")
    # A topic without items (possible for tiny catalogs) falls back to its neighbour's items.
    return order[np.clip(pos, 0, len(order) - 1)].astype(np.int64)
