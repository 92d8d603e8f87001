"""`Cosine` (the query's side computed once) gives `cosine`'s floats exactly."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from relevo.live.attributes import Cosine, cosine

TOKENS = ["c:a", "c:b", "t:x", "t:y", "b:z", "w:one", "w:two", "w:three"]
weights = st.sampled_from([1.0, 1.5, 2.0, 3.0]) | st.floats(0.01, 10.0)
token_sets = st.dictionaries(st.sampled_from(TOKENS), weights, max_size=6)


@given(
    query=token_sets,
    others=st.lists(token_sets, max_size=5),
    idfs=st.dictionaries(st.sampled_from(TOKENS), st.floats(1.0, 9.0), max_size=6),
    rare=st.floats(1.0, 9.0),
)
def test_the_prepared_query_gives_the_same_floats(
    query: dict[str, float], others: list[dict[str, float]], idfs: dict[str, float], rare: float
) -> None:
    prepared = Cosine(query, idfs, rare)
    for other in others:
        assert prepared(other) == cosine(query, other, idfs, rare)
