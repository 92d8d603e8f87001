"""Placements: the slots on a page that relevo fills, as configuration.

A placement shows either one **content variant** (a banner, an offer: JSON
documents with tags) or a list of **items**. It has business filters, diversity
and frequency caps, a policy, and a default that is always available, so a
decision can always be answered.

    {"placements": [
      {"id": "home_hero", "variants": [
          {"id": "A", "content": {"title": "Welcome"}, "tags": ["generic"]},
          {"id": "B", "content": {"title": "New in running"}, "tags": ["sport"]}],
       "default": "A", "frequency_cap": {"max": 5, "per": "1d"}},
      {"id": "home_recs", "k": 4, "default_items": ["sho-001", "boo-002"],
       "filters": {"in_stock": true, "exclude_purchased": true},
       "diversity": {"max_per_category": 2}}]}

Policies, in the order `auto` tries them: `rules` (decision rules choose a
variant, or filter/boost/bury/pin items), `ml` (a model: recommendations for
items, predicted propensity or learned click rates for variants), `default`.
An experiment on the placement chooses the policy per user instead.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from relevo.config import parse_duration_ms
from relevo.events import invalid_from

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$")]
Policy = Literal["auto", "rules", "ml", "default"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Variant(_Strict):
    id: Name
    content: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)


class Filters(_Strict):
    in_stock: bool = True
    exclude_purchased: bool = True
    exclude_seen: bool = False
    exclude_in_cart: bool = False
    min_price: float | None = Field(None, ge=0)
    max_price: float | None = Field(None, ge=0)
    categories: list[str] | None = None
    exclude_categories: list[str] = Field(default_factory=list)


class Diversity(_Strict):
    max_per_category: int = Field(ge=1)


class FrequencyCap(_Strict):
    """At most `max` exposures of one variant to one user per `per`."""

    max: int = Field(ge=1)
    per: str = "1d"

    @property
    def per_ms(self) -> int:
        return parse_duration_ms(self.per)

    @model_validator(mode="after")
    def _duration(self) -> FrequencyCap:
        parse_duration_ms(self.per)
        return self


class Placement(_Strict):
    id: Name
    description: str | None = None
    variants: list[Variant] = Field(default_factory=list)
    default: str | None = Field(None, description="The default variant's id.")
    k: int = Field(4, ge=1, le=100, description="Items to return (item placements).")
    candidates: int | None = Field(
        None,
        ge=1,
        le=1_000,
        description="Candidate items a decision weighs (at least `k`); by default "
        "max(10·k, 50). Fewer cost less CPU (each source is read about 3 times as deep) "
        "but leave filters, rules and diversity less to choose from: answers change.",
    )
    default_items: list[str] = Field(default_factory=list)
    filters: Filters = Field(default_factory=Filters)
    diversity: Diversity | None = None
    frequency_cap: FrequencyCap | None = None
    policy: Policy = "auto"
    deadline_ms: int = Field(50, ge=1, le=10_000)

    def candidates_for(self, k: int) -> int:
        """How many candidates a decision for `k` items weighs (see `candidates`).

        >>> Placement(id="p").candidates_for(4), Placement(id="p", candidates=20).candidates_for(4)
        (50, 20)
        >>> Placement(id="p", candidates=20).candidates_for(30)
        30
        """
        if self.candidates is None:
            return max(k * 10, 50)  # room for filters, rules and diversity to choose from
        return max(k, self.candidates)

    @property
    def kind(self) -> Literal["variants", "items"]:
        return "variants" if self.variants else "items"

    def variant(self, variant_id: str) -> Variant | None:
        return next((v for v in self.variants if v.id == variant_id), None)

    @model_validator(mode="after")
    def _default_exists(self) -> Placement:
        if self.variants:
            ids = [v.id for v in self.variants]
            if len(set(ids)) != len(ids):
                raise ValueError(f"variant ids must be unique, got {ids}")
            if self.default is None or self.default not in ids:
                raise ValueError(f"'default' must name one of the variants {ids}")
        elif self.default is not None:
            raise ValueError("'default' names a variant; item placements use 'default_items'")
        return self


class PlacementSet(_Strict):
    placements: list[Placement] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> PlacementSet:
        ids = [p.id for p in self.placements]
        if len(set(ids)) != len(ids):
            raise ValueError(f"placement ids must be unique, got {ids}")
        return self


class Placements:
    """The active placements, by id (what `Versioned` compiles a spec into)."""

    def __init__(self, spec: dict[str, Any], version: str) -> None:
        self.version = version
        self.by_id = {p.id: p for p in PlacementSet.model_validate(spec).placements}

    def get(self, placement_id: str) -> Placement | None:
        return self.by_id.get(placement_id)


def canonical_placements(raw: Any) -> dict[str, Any]:
    """Validate a placement set; `InvalidInput` names the first bad field."""
    try:
        spec = PlacementSet.model_validate(raw)
    except ValidationError as error:
        raise invalid_from(error, code="invalid_placements") from None
    dumped: dict[str, Any] = spec.model_dump(mode="json", exclude_unset=True)
    dumped.setdefault("placements", [])
    return dumped
