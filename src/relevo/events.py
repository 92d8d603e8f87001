"""Schemas of what clients send: events and catalog items.

Events are validated field by field (pydantic v2, unknown top-level fields
rejected, aware timestamps only) and turned into *records*: plain dicts with
epoch-millisecond timestamps and no empty fields. Records are what the event log
stores and what the feature code reads, live and in replay alike, so that both
paths see byte-for-byte the same input.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from relevo.clock import from_datetime
from relevo.errors import InvalidInput

STANDARD_EVENT_TYPES = (
    "view",
    "click",
    "add_to_cart",
    "remove_from_cart",
    "purchase",
    "search",
    "impression",
)
CART_EVENT_TYPES = frozenset({"add_to_cart", "remove_from_cart"})
EARLIEST_MS = 946_684_800_000  # 2000-01-01: anything earlier is a unit mistake (seconds?)
_YEAR_3000_MS = 32_503_680_000_000

# Bounds of the schema below, named once: the plain-event path (`_plain_record`) checks
# the same numbers without pydantic.
ID_MAX_LENGTH = 256
LABEL_MAX_LENGTH = 128
TYPE_MAX_LENGTH = 64
LINE_ITEMS_MAX = 100
QUANTITY_MAX = 1_000_000
PRICE_MAX = 1e9
VALUE_BOUND = 1e12
"""An event's `value` is within ±this."""

_NO_CONTROL = r"^[^\x00-\x1f\x7f]+$"
Id = Annotated[str, Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=_NO_CONTROL)]
Label = Annotated[str, Field(min_length=1, max_length=LABEL_MAX_LENGTH, pattern=_NO_CONTROL)]
EventType = Annotated[
    str,
    Field(
        min_length=1,
        max_length=TYPE_MAX_LENGTH,
        pattern=r"^[a-z][a-z0-9_]*$",
        description="`view`, `click`, `add_to_cart`, `remove_from_cart`, `purchase`, `search`, "
        "`impression`, or a custom name in lower_snake_case.",
    ),
]


@dataclass(frozen=True, slots=True)
class Limits:
    """What validation needs to know beyond the schema: the clock and the bounds."""

    now_ms: int
    future_tolerance_ms: int = 300_000
    max_properties_bytes: int = 8192
    max_properties_depth: int = 5


def _timestamp_ms(value: Any) -> Any:
    """ISO-8601 with a zone, or epoch milliseconds → epoch milliseconds."""
    if type(value) is int and EARLIEST_MS <= value <= _YEAR_3000_MS:  # the common case, first
        return value
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("expected an ISO-8601 string with a time zone or epoch milliseconds")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("epoch milliseconds must be a whole number")
        value = int(value)
    if isinstance(value, int):
        if value < EARLIEST_MS:
            raise ValueError(
                "timestamp is before 2000-01-01; epoch milliseconds are expected "
                "(this looks like seconds)"
            )
        if value > _YEAR_3000_MS:
            raise ValueError("timestamp is implausibly far in the future")
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("timestamp needs a time zone, e.g. 2026-11-26T10:00:00Z")
        return from_datetime(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("not an ISO-8601 timestamp (example: 2026-11-26T10:00:00Z)") from None
        if parsed.tzinfo is None:
            raise ValueError("timestamp needs a time zone, e.g. 2026-11-26T10:00:00Z")
        ms = from_datetime(parsed)
        if ms < EARLIEST_MS:
            raise ValueError("timestamp is before 2000-01-01")
        return ms
    raise ValueError("expected an ISO-8601 string with a time zone or epoch milliseconds")


TimestampMs = Annotated[
    int,
    BeforeValidator(_timestamp_ms),
    Field(
        description="ISO-8601 with a time zone (`2026-11-26T10:00:00Z`) or epoch milliseconds.",
        json_schema_extra={
            "anyOf": [{"type": "string", "format": "date-time"}, {"type": "integer"}]
        },
    ),
]


def _finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _check_free_form(value: dict[str, Any], max_bytes: int, max_depth: int) -> None:
    """Bound a free-form object so one client can't store megabytes per event."""
    try:
        size = len(orjson.dumps(value))
    except TypeError:  # e.g. an integer beyond 64 bits, which no JSON reader downstream takes
        raise ValueError(
            "holds a value that is not portable JSON (integers must fit 64 bits)"
        ) from None
    if size > max_bytes:
        raise ValueError(f"is {size} bytes as JSON; at most {max_bytes} are allowed")
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise ValueError(f"nests deeper than {max_depth} levels")
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)


class LineItem(BaseModel):
    """One item of a cart or purchase event."""

    model_config = ConfigDict(extra="forbid")

    item_id: Id
    quantity: int = Field(1, ge=1, le=QUANTITY_MAX)
    price: float | None = Field(None, ge=0, le=PRICE_MAX, description="Unit price.")
    category: Label | None = None

    _finite_price = field_validator("price")(_finite)


ContextValue = str | int | float | bool


class Context(BaseModel):
    """Where the event happened. Known fields are typed; up to 20 custom scalar keys are kept."""

    model_config = ConfigDict(extra="allow")

    device: Annotated[str, Field(max_length=64)] | None = Field(
        None, description="`mobile`, `desktop`, `tablet`, ..."
    )
    country: Annotated[str, Field(min_length=2, max_length=2, pattern=r"^[A-Za-z]{2}$")] | None = (
        Field(None, description="ISO 3166-1 alpha-2 country code.")
    )
    referrer: Annotated[str, Field(max_length=2048)] | None = None
    page: Annotated[str, Field(max_length=2048)] | None = None
    user_agent: Annotated[str, Field(max_length=1024)] | None = None
    locale: Annotated[str, Field(max_length=35)] | None = None

    @model_validator(mode="after")
    def _bounded_extras(self) -> Context:
        # The attribute, not the `model_extra` property: this runs for every event's context.
        extra = self.__pydantic_extra__
        if not extra:
            return self
        if len(extra) > 20:
            raise ValueError("at most 20 custom context keys are allowed")
        for key, value in extra.items():
            if len(key) > 64:
                raise ValueError(f"custom context key {key[:20]!r}... is longer than 64 characters")
            if not isinstance(value, ContextValue):
                raise ValueError(
                    f"custom context value {key!r} must be a string, number or boolean"
                )
            if isinstance(value, str) and len(value) > 256:
                raise ValueError(f"custom context value {key!r} is longer than 256 characters")
        return self


class Event(BaseModel):
    """Something a user did."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "event_id": "8f1c2a",
                    "type": "view",
                    "user_id": "u-42",
                    "session_id": "s-1",
                    "timestamp": "2026-11-26T10:00:00Z",
                    "item_id": "sku-1",
                    "context": {"device": "mobile", "country": "FR"},
                }
            ]
        },
    )

    event_id: Id | None = Field(
        None,
        description="Unique id; retries with the same id are counted once. When absent, the "
        "server derives one from the content, so an exact retry is still recognized.",
    )
    type: EventType
    user_id: Id | None = Field(None, description="Known user. One of user_id / anonymous_id.")
    anonymous_id: Id | None = Field(None, description="Device or cookie id before login.")
    session_id: Id | None = None
    timestamp: TimestampMs | None = Field(
        None, description="When it happened (default: when it arrived)."
    )
    item_id: Id | None = None
    items: list[LineItem] | None = Field(None, max_length=LINE_ITEMS_MAX)
    category: Label | None = Field(
        None, description="Category viewed (for category pages); filled from the catalog."
    )
    value: float | None = Field(
        None, ge=-VALUE_BOUND, le=VALUE_BOUND, description="Order value, rating, ..."
    )
    context: Context | None = None
    properties: dict[str, Any] | None = Field(None, description="Free-form, bounded in size.")
    decision_id: Id | None = Field(None, description="The decision this event responds to.")

    _finite_value = field_validator("value")(_finite)

    @field_validator("timestamp")
    @classmethod
    def _not_in_future(cls, value: int | None, info: ValidationInfo) -> int | None:
        limits = info.context.get("limits") if info.context else None
        if value is None or not isinstance(limits, Limits):
            return value
        if value > limits.now_ms + limits.future_tolerance_ms:
            raise ValueError(
                f"timestamp is more than {limits.future_tolerance_ms // 1000} s in the future"
            )
        return value

    @field_validator("properties")
    @classmethod
    def _bounded_properties(
        cls, value: dict[str, Any] | None, info: ValidationInfo
    ) -> dict[str, Any] | None:
        if value is not None:
            limits = info.context.get("limits") if info.context else None
            if not isinstance(limits, Limits):
                limits = Limits(now_ms=0)
            _check_free_form(value, limits.max_properties_bytes, limits.max_properties_depth)
        return value


class EventBatch(BaseModel):
    """Envelope of a batch; used for the OpenAPI schema (the route parses bodies itself)."""

    model_config = ConfigDict(extra="forbid")

    events: list[Event] = Field(max_length=10_000)


class Item(BaseModel):
    """A catalog entry."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "item_id": "sku-1",
                    "title": "Trail running shoe",
                    "category": "shoes",
                    "tags": ["running", "trail"],
                    "brand": "Acme",
                    "price": 89.9,
                    "currency": "EUR",
                    "in_stock": True,
                }
            ]
        },
    )

    item_id: Id
    title: Annotated[str, Field(max_length=512)] | None = None
    category: Label | None = None
    tags: list[Label] = Field(default_factory=list, max_length=64)
    brand: Label | None = None
    price: float | None = Field(None, ge=0, le=PRICE_MAX)
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] | None = None
    in_stock: bool = True
    text: Annotated[str, Field(max_length=20_000)] | None = Field(
        None, description="Description used by content-based models."
    )
    attributes: dict[str, Any] = Field(default_factory=dict, description="Free-form, bounded.")
    updated_at: TimestampMs | None = Field(None, description="Default: when it arrived.")
    created_at: TimestampMs | None = Field(
        None,
        description="When the item was first listed: the catalog's order, and what makes it "
        "one of the newest items. Default: kept from the item's earlier upserts; for a new "
        "item, its updated_at.",
    )

    _finite_price = field_validator("price")(_finite)

    @field_validator("attributes")
    @classmethod
    def _bounded_attributes(cls, value: dict[str, Any]) -> dict[str, Any]:
        _check_free_form(value, 16_384, 5)
        return value


class ItemBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[Item] = Field(max_length=10_000)


class ItemRemoval(BaseModel):
    """`POST /v1/items/remove`: items leaving the catalog (a season's retired range)."""

    model_config = ConfigDict(extra="forbid")

    item_ids: list[Id] = Field(min_length=1, max_length=10_000)


# --- turning input into records ---------------------------------------------------------


def field_path(loc: tuple[int | str, ...], prefix: str = "") -> str:
    """Pydantic's error location as a readable path: ``("items", 0, "price")`` → ``items[0].price``.

    >>> field_path(("items", 0, "price"), "events[3]")
    'events[3].items[0].price'
    """
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.startswith(("function-", "typed-")) or part in {"str", "int", "float"}:
            continue  # internal validator names, meaningless to a client
        else:
            path += f".{part}" if path else part
    return path


def invalid_from(error: ValidationError, prefix: str = "", code: str = "invalid") -> InvalidInput:
    """The first problem of a pydantic error as an `InvalidInput` naming its field."""
    first = error.errors(include_url=False)[0]
    field = field_path(tuple(first["loc"]), prefix) or prefix or "body"
    message = first["msg"].removeprefix("Value error, ")
    return InvalidInput(message, field=field, code=code)


def parse_event(raw: Any, limits: Limits, prefix: str = "") -> Event:
    """Validate one event; raise `InvalidInput` naming the field (prefixed in batches)."""
    if not isinstance(raw, dict):
        raise InvalidInput(
            "an event must be a JSON object", field=prefix or "body", code="invalid_event"
        )
    try:
        event = Event.model_validate(raw, context={"limits": limits})
    except ValidationError as error:
        raise invalid_from(error, prefix, code="invalid_event") from None
    _check_who_and_what(event, prefix)
    return event


def _check_who_and_what(event: Event, prefix: str) -> None:
    """Rules across fields, checked after the schema so the error can name a field."""
    problem = _who_and_what_problem(
        event.user_id, event.anonymous_id, event.type, event.item_id, event.items
    )
    if problem is not None:
        raise _problem(prefix, *problem)


def _who_and_what_problem(
    user_id: Any, anonymous_id: Any, kind: str, item_id: Any, items: Any
) -> tuple[str, str] | None:
    """What is wrong across these fields (the field, why), or None: someone, and for a
    cart event something. One place for both checks: an event's (`parse_event`) and a
    batch's dumped records (`parse_all`)."""
    if user_id is None and anonymous_id is None:
        return "user_id", "user_id or anonymous_id is required"
    if kind in CART_EVENT_TYPES and item_id is None and not items:
        return "item_id", f"{kind} events need item_id or items"
    return None


def _problem(prefix: str, field: str, message: str) -> InvalidInput:
    # A module function, not a closure made for every event checked (most pass).
    return InvalidInput(
        message, field=f"{prefix}.{field}" if prefix else field, code="invalid_event"
    )


_EVENT_LIST = TypeAdapter(list[Event])


def parse_all(raws: list[Any], limits: Limits) -> list[dict[str, Any]] | None:
    """All events validated and dumped in one pass, or None if any is invalid.

    The common case, a batch with no bad event, costs one call into pydantic's core
    instead of one per event, or none when every event has the plain shape that
    `_plain_records` checks itself; the caller falls back to `parse_event` one by one
    to report which events are wrong.
    """
    dumped = _plain_records(raws, limits)
    if dumped is None:
        try:
            events = _EVENT_LIST.validate_python(raws, context={"limits": limits})
        except ValidationError:
            return None
        dumped = _EVENT_LIST.dump_python(events, exclude_none=True)
    # the rules across fields, read from the records: a model's attributes go through
    # pydantic's `__getattr__` hook, ~500 instructions each
    get, check = dict.get, _who_and_what_problem
    for record in dumped:
        if check(
            get(record, "user_id"),
            get(record, "anonymous_id"),
            record["type"],
            get(record, "item_id"),
            get(record, "items"),
        ):
            return None
    return dumped


# --- the plain shape, checked without pydantic ---------------------------------------------
# Validating and dumping through pydantic was a fifth of an API process's CPU in worker mode
# (`bench.load`'s ingestion), where most events are a handful of ids, a type, a timestamp
# and a small context. Those are checked here, exactly as the schema above checks them, and
# their records built in the order of its fields (the order `model_dump` gives, which the log
# keeps); anything else (another type of value, a coercion pydantic would make, a custom
# context key, a value out of bounds) is left to pydantic, which then also names what is
# wrong. `tests/fuzz/test_plain_events.py` holds the two to the same records.

_CONTROL = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
"""What `_NO_CONTROL` refuses, and what pydantic refuses in any string: a lone surrogate."""
_SURROGATE = re.compile("[\ud800-\udfff]")
_TYPE = re.compile("[a-z][a-z0-9_]*")
_STANDARD_TYPES = frozenset(STANDARD_EVENT_TYPES)
_CONTEXT_LENGTHS = {
    name: next(s["maxLength"] for s in field["anyOf"] if "maxLength" in s)
    for name, field in Context.model_json_schema()["properties"].items()
}
"""`Context`'s fields, in its order, and their most characters: read from its schema, so
that the two cannot disagree."""
_CONTEXT_FIELDS = tuple(_CONTEXT_LENGTHS.items())
_LINE_FIELDS = frozenset({"item_id", "quantity", "price", "category"})


class _Refused(Exception):
    """Not the plain shape: pydantic decides."""


def _plain_records(raws: list[Any], limits: Limits) -> list[dict[str, Any]] | None:
    """The records of `raws` if every one has the plain shape (see above), else None.

    Ids and labels are gathered and searched for control characters once per batch, and
    every other string for lone surrogates: one regular expression call each, not one a
    field.
    """
    latest = min(limits.now_ms + limits.future_tolerance_ms, _YEAR_3000_MS)
    labels: list[str] = []  # ids and labels: no control character, no lone surrogate
    texts: list[str] = []  # other strings: no lone surrogate
    try:
        records = [_plain_record(raw, latest, limits, labels, texts) for raw in raws]
    except _Refused:
        return None
    if _CONTROL.search("".join(labels)) or _SURROGATE.search("".join(texts)):
        return None
    return records


def _plain_record(
    raw: Any, latest: int, limits: Limits, labels: list[str], texts: list[str]
) -> dict[str, Any]:
    """One event's record, in `Event`'s field order (`_plain_records`)."""
    if type(raw) is not dict:
        raise _Refused
    given = tuple(raw)
    record: dict[str, Any] = {}
    for name, check in _event_shapes.get(given) or _shape(given, _EVENT_CHECKS, _event_shapes):
        value = raw[name]
        if value is not None:
            record[name] = check(value, latest, limits, labels, texts)
    if "type" not in record:
        raise _Refused
    return record


_SHAPES_KEPT = 512
_event_shapes: dict[tuple[str, ...], tuple[tuple[str, Any], ...]] = {}
_context_shapes: dict[tuple[str, ...], tuple[tuple[str, Any], ...]] = {}


def _shape(
    given: tuple[str, ...],
    fields: tuple[tuple[str, Any], ...],
    shapes: dict[tuple[str, ...], tuple[tuple[str, Any], ...]],
) -> tuple[tuple[str, Any], ...]:
    """The `fields` (name, what checks it) among the keys `given`, in the schema's order;
    `_Refused` if a key is not one of them. Kept per order of keys (clients send theirs
    in the same order every time), so a record visits the fields given, not every field
    of the schema; only shapes of known keys are kept, `_SHAPES_KEPT` at most."""
    present = set(given)
    if not present <= {name for name, _ in fields}:
        raise _Refused
    if len(shapes) >= _SHAPES_KEPT:
        shapes.clear()
    shape = shapes[given] = tuple(field for field in fields if field[0] in present)
    return shape


def _id(value: Any, latest: int, limits: Limits, labels: list[str], texts: list[str]) -> str:
    if type(value) is not str or not 0 < len(value) <= ID_MAX_LENGTH:
        raise _Refused
    labels.append(value)
    return value


def _label(value: Any, latest: int, limits: Limits, labels: list[str], texts: list[str]) -> str:
    if type(value) is not str or not 0 < len(value) <= LABEL_MAX_LENGTH:
        raise _Refused
    labels.append(value)
    return value


def _event_type(
    value: Any, latest: int, limits: Limits, labels: list[str], texts: list[str]
) -> str:
    if type(value) is str and value in _STANDARD_TYPES:
        return value
    if type(value) is not str or len(value) > TYPE_MAX_LENGTH or _TYPE.fullmatch(value) is None:
        raise _Refused
    return value


def _timestamp(value: Any, latest: int, limits: Limits, labels: list[str], texts: list[str]) -> int:
    if type(value) is not int or not EARLIEST_MS <= value <= latest:
        raise _Refused
    return value


def _value(value: Any, latest: int, limits: Limits, labels: list[str], texts: list[str]) -> float:
    """A float, or an int as pydantic turns it into one (a bool is left to it)."""
    kind = type(value)
    if (kind is float or kind is int) and -VALUE_BOUND <= value <= VALUE_BOUND:  # (NaN: False)
        return float(value)
    raise _Refused


def _context(
    value: Any, latest: int, limits: Limits, labels: list[str], texts: list[str]
) -> dict[str, Any]:
    """Known context fields only (custom keys go through `Context._bounded_extras`)."""
    if type(value) is not dict:
        raise _Refused
    given = tuple(value)
    context: dict[str, Any] = {}
    for name, most in _context_shapes.get(given) or _shape(given, _CONTEXT_FIELDS, _context_shapes):
        text = value[name]
        if text is None:
            continue
        if type(text) is not str or len(text) > most:
            raise _Refused
        if name == "country" and not (len(text) == 2 and text.isascii() and text.isalpha()):
            raise _Refused
        texts.append(text)
        context[name] = text
    return context


def _items(
    value: Any, latest: int, limits: Limits, labels: list[str], texts: list[str]
) -> list[dict[str, Any]]:
    if type(value) is not list or len(value) > LINE_ITEMS_MAX:
        raise _Refused
    return [_line(line, labels) for line in value]


def _line(line: Any, labels: list[str]) -> dict[str, Any]:
    """A `LineItem`'s record: its quantity always (1 by default), the rest when given."""
    if type(line) is not dict or not line.keys() <= _LINE_FIELDS:
        raise _Refused
    item_id, quantity = line.get("item_id"), line.get("quantity", 1)
    if type(item_id) is not str or not 0 < len(item_id) <= ID_MAX_LENGTH:
        raise _Refused
    if type(quantity) is not int or not 1 <= quantity <= QUANTITY_MAX:
        raise _Refused
    labels.append(item_id)
    record: dict[str, Any] = {"item_id": item_id, "quantity": quantity}
    price, category = line.get("price"), line.get("category")
    if price is not None:
        kind = type(price)
        if not ((kind is float or kind is int) and 0 <= price <= PRICE_MAX):
            raise _Refused
        record["price"] = float(price)
    if category is not None:
        if type(category) is not str or not 0 < len(category) <= LABEL_MAX_LENGTH:
            raise _Refused
        labels.append(category)
        record["category"] = category
    return record


def _properties(
    value: Any, latest: int, limits: Limits, labels: list[str], texts: list[str]
) -> dict[str, Any]:
    """Free-form: bounded as `Event._bounded_properties` bounds it (its JSON encoding also
    refuses lone surrogates), kept as given, as pydantic keeps a `dict[str, Any]`."""
    if type(value) is not dict or not all(type(key) is str for key in value):
        raise _Refused
    try:
        _check_free_form(value, limits.max_properties_bytes, limits.max_properties_depth)
    except ValueError:
        raise _Refused from None
    return value


_EVENT_CHECKS: tuple[tuple[str, Callable[..., Any]], ...] = (
    ("event_id", _id),
    ("type", _event_type),
    ("user_id", _id),
    ("anonymous_id", _id),
    ("session_id", _id),
    ("timestamp", _timestamp),
    ("item_id", _id),
    ("items", _items),
    ("category", _label),
    ("value", _value),
    ("context", _context),
    ("properties", _properties),
    ("decision_id", _id),
)
"""`Event`'s fields in its order, each with its check (which returns the value recorded)."""


def finish_record(record: dict[str, Any], received_ms: int) -> dict[str, Any]:
    """Fill in what the server decides: the arrival time, and a derived id when absent."""
    record.setdefault("timestamp", received_ms)
    if "event_id" not in record:
        record["event_id"] = derive_event_id(record)
    return record


def derive_event_id(record: dict[str, Any]) -> str:
    """A stable id from an event's content, so that an exact retry is recognized.

    Computed on the normalized record (timestamps already in milliseconds), so the
    same event written as ISO text or as epoch milliseconds gets the same id.
    """
    digest = hashlib.blake2b(orjson.dumps(record, option=orjson.OPT_SORT_KEYS), digest_size=12)
    return "h-" + digest.hexdigest()


def event_record(event: Event, received_ms: int) -> dict[str, Any]:
    """The log's form of an event: no empty fields, a timestamp, an id."""
    return finish_record(event.model_dump(exclude_none=True), received_ms)


def profile_key(record: dict[str, Any]) -> str:
    """Whose profile an event updates: the user id, or else the anonymous id."""
    key = record.get("user_id") or record.get("anonymous_id")
    assert isinstance(key, str), "validated events always have a user or an anonymous id"
    return key


def item_record(item: Item, received_ms: int) -> dict[str, Any]:
    record = item.model_dump(exclude_none=True)
    record.setdefault("updated_at", received_ms)
    return record
