"""A Python client for relevo's HTTP API: `Client` (sync) and `AsyncClient` (async).

    >>> from relevo.client import Client
    >>> with Client("http://127.0.0.1:8000", key="write-key") as relevo:  # doctest: +SKIP
    ...     relevo.track("view", user_id="u-42", item_id="sku-1")
    ...     relevo.consent("u-42", personalization=False)

The verbs are those of the browser SDK: `track` / `send` (events), `identify`,
`consent`, `decide`, plus `upsert_items`, `profile`, `erase_user` and
`compact_archive` for admin keys. Results are typed dataclasses; errors raise
`ApiError` with the server's ``code``, ``message`` and ``field``.

Retries: 429 and 503 answers and connection failures are retried with exponential
backoff (honouring ``Retry-After``), at most `max_retries` times. Retrying an event
is safe because the client gives every event without an ``event_id`` a random one
before the first attempt: a retry is recognized as a duplicate.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

T = TypeVar("T")
RETRY_STATUSES = frozenset({429, 503})


class ApiError(Exception):
    """The server refused the request (4xx) or failed (5xx) after the retries."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(f"{status} {code}: {message}" + (f" ({field})" if field else ""))
        self.status = status
        self.code = code
        self.message = message
        self.field = field


@dataclass(frozen=True, slots=True)
class EventResult:
    index: int
    status: str
    event_id: str | None = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class IngestResult:
    accepted: int
    duplicate: int
    rejected: int
    results: list[EventResult]


@dataclass(frozen=True, slots=True)
class ConsentState:
    user_id: str
    consent: dict[str, bool]


@dataclass(frozen=True, slots=True)
class Profile:
    """A user's profile; `data` holds every field of ``GET /v1/users/{id}``."""

    user_id: str
    events: int
    consent: dict[str, bool]
    counts: dict[str, dict[str, int]]
    recent_items: list[str]
    segments: list[str]
    data: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class Receipt:
    receipt_id: str
    user_id: str
    erased_at: str
    removed: dict[str, int]
    pending: list[str]


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer of ``POST /v1/decide``; `data` holds the whole response."""

    decision_id: str | None
    placement: str | None
    items: list[Any]
    variant: Any
    data: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class _Call(Generic[T]):
    """One request and how to read its answer (shared by the sync and async clients)."""

    method: str
    path: str
    parse: Callable[[Any], T]
    json: Any = None
    params: Mapping[str, Any] | None = None
    missing: Any = ...  # what a 404 means, when it is not an error


def _with_ids(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{"event_id": uuid.uuid4().hex, **event} for event in events]


def _ingest(body: Any) -> IngestResult:
    return IngestResult(
        accepted=body["accepted"],
        duplicate=body["duplicate"],
        rejected=body["rejected"],
        results=[EventResult(**result) for result in body["results"]],
    )


def _profile(body: Any) -> Profile:
    return Profile(
        user_id=body["user_id"],
        events=body["events"],
        consent=body["consent"],
        counts=body["counts"],
        recent_items=body["recent_items"],
        segments=body["segments"],
        data=body,
    )


def _decision(body: Any) -> Decision:
    return Decision(
        decision_id=body.get("decision_id"),
        placement=body.get("placement"),
        items=list(body.get("items") or []),
        variant=body.get("variant"),
        data=body,
    )


class _Calls:
    """The verbs as requests."""

    @staticmethod
    def send(events: Iterable[Mapping[str, Any]]) -> _Call[IngestResult]:
        return _Call("POST", "/v1/events", _ingest, json={"events": _with_ids(events)})

    @staticmethod
    def track(event_type: str, fields: dict[str, Any]) -> _Call[IngestResult]:
        # a single event (not a batch of one), so an invalid event raises `ApiError`
        (event,) = _with_ids([{"type": event_type, **fields}])
        return _Call("POST", "/v1/events", _ingest, json=event)

    @staticmethod
    def identify(
        user_id: str, anonymous_id: str | None, traits: Mapping[str, Any] | None
    ) -> _Call[IngestResult]:
        event: dict[str, Any] = {"type": "identify", "user_id": user_id}
        if anonymous_id is not None:
            event["anonymous_id"] = anonymous_id
        if traits:
            event["properties"] = dict(traits)
        return _Calls.send([event])

    @staticmethod
    def consent(
        user_id: str, personalization: bool | None, analytics: bool | None
    ) -> _Call[ConsentState]:
        purposes = {"personalization": personalization, "analytics": analytics}
        body = {name: value for name, value in purposes.items() if value is not None}
        return _Call(
            "PUT",
            f"/v1/users/{_quote(user_id)}/consent",
            lambda b: ConsentState(b["user_id"], b["consent"]),
            json=body,
        )

    @staticmethod
    def decide(
        placement: str, user_id: str, context: Mapping[str, Any] | None, k: int | None
    ) -> _Call[Decision]:
        body: dict[str, Any] = {"user_id": user_id, "placement": placement}
        body["context"] = dict(context or {})
        if k is not None:
            body["k"] = k
        return _Call("POST", "/v1/decide", _decision, json=body)

    @staticmethod
    def upsert_items(items: Iterable[Mapping[str, Any]]) -> _Call[int]:
        return _Call("POST", "/v1/items", lambda b: int(b["upserted"]), json={"items": list(items)})

    @staticmethod
    def remove_item(item_id: str) -> _Call[bool]:
        return _Call("DELETE", f"/v1/items/{_quote(item_id)}", lambda b: bool(b["existed"]))

    @staticmethod
    def remove_items(item_ids: Iterable[str]) -> _Call[list[str]]:
        return _Call(
            "POST",
            "/v1/items/remove",
            lambda b: list(b["existed"]),
            json={"item_ids": list(item_ids)},
        )

    @staticmethod
    def profile(user_id: str) -> _Call[Profile | None]:
        return _Call("GET", f"/v1/users/{_quote(user_id)}", _profile, missing=None)

    @staticmethod
    def erase_user(user_id: str) -> _Call[Receipt]:
        return _Call("DELETE", f"/v1/users/{_quote(user_id)}", lambda b: Receipt(**b))

    @staticmethod
    def compact_archive(grace_seconds: int) -> _Call[dict[str, Any]]:
        return _Call("POST", "/v1/archive/compact", dict, params={"grace_seconds": grace_seconds})


def _quote(segment: str) -> str:
    return quote(segment, safe="")


class _Policy:
    """Shared by both clients: headers, retry decisions, answers to results."""

    def __init__(self, base_url: str, key: str | None, max_retries: int, backoff: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.max_retries = max_retries
        self.backoff = backoff

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        """Seconds before the next attempt: ``Retry-After`` if given, else backoff + jitter."""
        retry_after = response.headers.get("retry-after", "") if response is not None else ""
        if retry_after.isdigit():
            return float(retry_after)
        return float(min(10.0, self.backoff * 2**attempt) * (0.5 + random.random() / 2))

    def should_retry(self, attempt: int, response: httpx.Response | None) -> bool:
        if attempt >= self.max_retries:
            return False
        return response is None or response.status_code in RETRY_STATUSES

    @staticmethod
    def result(call: _Call[T], response: httpx.Response) -> T:
        if response.status_code == 404 and call.missing is not ...:
            missing: T = call.missing
            return missing
        if response.status_code >= 400:
            raise _error(response)
        return call.parse(response.json())


def _error(response: httpx.Response) -> ApiError:
    try:
        detail = response.json()["error"]
        return ApiError(
            response.status_code, detail["code"], detail["message"], detail.get("field")
        )
    except (ValueError, KeyError, TypeError):
        return ApiError(response.status_code, "http_error", response.text[:300])


class Client:
    """Synchronous client. Use as a context manager, or call `close()`."""

    def __init__(
        self,
        base_url: str,
        key: str | None = None,
        *,
        timeout: float = 10.0,
        max_retries: int = 5,
        backoff: float = 0.2,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._policy = _Policy(base_url, key, max_retries, backoff)
        self._http = httpx.Client(
            base_url=self._policy.base_url,
            headers=self._policy.headers,
            timeout=timeout,
            transport=transport,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _run(self, call: _Call[T]) -> T:
        attempt = 0
        while True:
            response: httpx.Response | None = None
            try:
                response = self._http.request(
                    call.method, call.path, json=call.json, params=call.params
                )
            except httpx.TransportError:
                if not self._policy.should_retry(attempt, None):
                    raise
            if response is not None and not self._policy.should_retry(attempt, response):
                return self._policy.result(call, response)
            time.sleep(self._policy.delay(attempt, response))
            attempt += 1

    def send(self, events: Iterable[Mapping[str, Any]]) -> IngestResult:
        """Send a batch (each event gets an ``event_id`` if it has none); invalid events are
        reported one by one in the result, not raised."""
        return self._run(_Calls.send(events))

    def track(self, event_type: str, **fields: Any) -> IngestResult:
        """One event: ``track("view", user_id="u-1", item_id="sku-1")``; invalid → `ApiError`."""
        return self._run(_Calls.track(event_type, fields))

    def identify(
        self, user_id: str, anonymous_id: str | None = None, traits: Mapping[str, Any] | None = None
    ) -> IngestResult:
        return self._run(_Calls.identify(user_id, anonymous_id, traits))

    def consent(
        self, user_id: str, *, personalization: bool | None = None, analytics: bool | None = None
    ) -> ConsentState:
        return self._run(_Calls.consent(user_id, personalization, analytics))

    def decide(
        self,
        placement: str,
        user_id: str,
        context: Mapping[str, Any] | None = None,
        k: int | None = None,
    ) -> Decision:
        return self._run(_Calls.decide(placement, user_id, context, k))

    def upsert_items(self, items: Iterable[Mapping[str, Any]]) -> int:
        return self._run(_Calls.upsert_items(items))

    def remove_item(self, item_id: str) -> bool:
        """Take the item out of the catalog; whether the catalog held it (idempotent)."""
        return self._run(_Calls.remove_item(item_id))

    def remove_items(self, item_ids: Iterable[str]) -> list[str]:
        """Take these items out of the catalog; those it held."""
        return self._run(_Calls.remove_items(item_ids))

    def profile(self, user_id: str) -> Profile | None:
        """The user's profile, or None when relevo has none."""
        return self._run(_Calls.profile(user_id))

    def erase_user(self, user_id: str) -> Receipt:
        return self._run(_Calls.erase_user(user_id))

    def compact_archive(self, grace_seconds: int = 300) -> dict[str, Any]:
        return self._run(_Calls.compact_archive(grace_seconds))


class AsyncClient:
    """Asynchronous client, the same verbs as `Client`. Use ``async with``."""

    def __init__(
        self,
        base_url: str,
        key: str | None = None,
        *,
        timeout: float = 10.0,
        max_retries: int = 5,
        backoff: float = 0.2,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._policy = _Policy(base_url, key, max_retries, backoff)
        self._http = httpx.AsyncClient(
            base_url=self._policy.base_url,
            headers=self._policy.headers,
            timeout=timeout,
            transport=transport,
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _run(self, call: _Call[T]) -> T:
        attempt = 0
        while True:
            response: httpx.Response | None = None
            try:
                response = await self._http.request(
                    call.method, call.path, json=call.json, params=call.params
                )
            except httpx.TransportError:
                if not self._policy.should_retry(attempt, None):
                    raise
            if response is not None and not self._policy.should_retry(attempt, response):
                return self._policy.result(call, response)
            await asyncio.sleep(self._policy.delay(attempt, response))
            attempt += 1

    async def send(self, events: Iterable[Mapping[str, Any]]) -> IngestResult:
        return await self._run(_Calls.send(events))

    async def track(self, event_type: str, **fields: Any) -> IngestResult:
        return await self._run(_Calls.track(event_type, fields))

    async def identify(
        self, user_id: str, anonymous_id: str | None = None, traits: Mapping[str, Any] | None = None
    ) -> IngestResult:
        return await self._run(_Calls.identify(user_id, anonymous_id, traits))

    async def consent(
        self, user_id: str, *, personalization: bool | None = None, analytics: bool | None = None
    ) -> ConsentState:
        return await self._run(_Calls.consent(user_id, personalization, analytics))

    async def decide(
        self,
        placement: str,
        user_id: str,
        context: Mapping[str, Any] | None = None,
        k: int | None = None,
    ) -> Decision:
        return await self._run(_Calls.decide(placement, user_id, context, k))

    async def upsert_items(self, items: Iterable[Mapping[str, Any]]) -> int:
        return await self._run(_Calls.upsert_items(items))

    async def remove_item(self, item_id: str) -> bool:
        return await self._run(_Calls.remove_item(item_id))

    async def remove_items(self, item_ids: Iterable[str]) -> list[str]:
        return await self._run(_Calls.remove_items(item_ids))

    async def profile(self, user_id: str) -> Profile | None:
        return await self._run(_Calls.profile(user_id))

    async def erase_user(self, user_id: str) -> Receipt:
        return await self._run(_Calls.erase_user(user_id))

    async def compact_archive(self, grace_seconds: int = 300) -> dict[str, Any]:
        return await self._run(_Calls.compact_archive(grace_seconds))
