"""What serving answers: items with scores and the reasons (source, model version)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Reason:
    """A source that proposed an item, and the model version behind it (None: not a model)."""

    source: str
    model_version: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "model_version": self.model_version}


@dataclass(frozen=True, slots=True)
class Recommended:
    item_id: str
    score: float
    reasons: tuple[Reason, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "score": round(self.score, 6),
            "reasons": [reason.to_dict() for reason in self.reasons],
        }


@dataclass(frozen=True)
class Recommendations:
    """One answer. `fallback` is true when the trained model contributed nothing."""

    user_id: str | None
    items: list[Recommended]
    model_name: str
    model_version: str | None
    fallback: bool
    #: The item the answer is about (similar items), when there is one.
    item_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        if self.item_id is not None:
            found["item_id"] = self.item_id
        else:
            found["user_id"] = self.user_id
        found["items"] = [item.to_dict() for item in self.items]
        found["model"] = {"name": self.model_name, "version": self.model_version}
        found["fallback"] = self.fallback
        return found


@dataclass(frozen=True)
class ScoredVariants:
    """Propensities of candidates (items or content variants) for one user and context."""

    target: str
    #: Per candidate, in the order given: its id and P(target), or None without a model.
    scores: list[tuple[str, float | None]]
    model_version: str | None
    fallback: bool
    model_name: str = "propensity"
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "scores": [
                {"id": cid, "p": None if p is None else round(p, 6)} for cid, p in self.scores
            ],
            "model": {"name": self.model_name, "version": self.model_version},
            "fallback": self.fallback,
        }
