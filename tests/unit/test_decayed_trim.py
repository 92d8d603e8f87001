"""The embedded decayed set keeps exactly Redis's top members when it trims."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from relevo.store.memory import _Decayed

# few distinct scores, so that ties (ranked by member, as Redis does) are common
scores = st.dictionaries(
    st.text("abcdef", min_size=1, max_size=3), st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.25])
)


@given(scores=scores, max_len=st.integers(0, 12))
def test_trim_keeps_the_best_ranked_by_score_then_member(
    scores: dict[str, float], max_len: int
) -> None:
    decayed = _Decayed(landmark=0)
    decayed.scores = dict(scores)
    decayed.trim(max_len)
    ranked = sorted(scores.items(), key=lambda pair: (pair[1], pair[0]), reverse=True)
    assert decayed.scores == dict(ranked[:max_len])
