"""Versioned configuration: every change is a new immutable version; one is active.

Rules, placements, experiments and flags are each a *kind* of configuration held
this way. A change is a log record (kind ``config``), applied like an event: the
embedded store rebuilds it on replay, a replay evaluates each event with the
configuration active at its place in the log, and there is an audit trail.
Versions are ``v1``, ``v2``, ... from a store counter, unique across processes.
Other API processes pick a change up within a second (`refresh`); the process
that made it, at once. Sending the active configuration again makes no version,
so a retried or GitOps-driven ``PUT`` is safe.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import orjson

from relevo.clock import Clock, to_iso
from relevo.errors import NotFound
from relevo.store.base import Store

T = TypeVar("T")
EMPTY_VERSION = "v0"
COMPILED_KEPT = 4
"""Compiled versions a process keeps per kind, the most recently active: the active one
and those a rollback is likely to return to. A compiled set of 1,000 rules holds
megabytes, and a long-lived process sees many versions; an older one is compiled again
if it comes back."""


def content_hash(spec: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(spec, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


class Versioned(Generic[T]):
    """One kind of configuration: its versions in the store, and the active one compiled.

    `validate` turns input into the canonical spec (raising with every problem);
    `compile` turns a spec into what the engine uses, given its version id.
    """

    def __init__(
        self,
        kind: str,
        store: Store,
        clock: Clock,
        *,
        validate: Callable[[Any], dict[str, Any]],
        compile: Callable[[dict[str, Any], str], T],
        empty: dict[str, Any],
    ) -> None:
        self.kind = kind
        self.store = store
        self.clock = clock
        self.validate = validate
        self._compile = compile
        self._empty = empty
        self._keys = f"config:{kind}"
        self.version = EMPTY_VERSION
        self.current: T = compile(empty, EMPTY_VERSION)
        self._compiled: dict[str, T] = {}

    async def put_record(self, raw: Any) -> dict[str, Any] | None:
        """The log record that makes `raw` the active configuration; None if it already is."""
        spec = self.validate(raw)
        digest = content_hash(spec)
        if digest == await self._hash_of(self.version):
            return None
        version = f"v{await self.store.incr(self._keys + ':sequence')}"
        return self._record("put", version, spec=spec, hash=digest)

    async def rollback_record(self, version: str | None) -> dict[str, Any]:
        """The log record that reactivates `version` (default: the one before the active)."""
        known = [entry["version"] for entry in await self.versions()]
        if version is None:
            index = known.index(self.version) if self.version in known else len(known)
            if index == 0:
                raise NotFound(f"there is no earlier {self.kind} version", field="version")
            version = known[index - 1]
        elif version not in known:
            raise NotFound(f"no {self.kind} version {version!r}", field="version")
        return self._record("activate", version)

    def _record(self, op: str, version: str, **fields: Any) -> dict[str, Any]:
        return {"of": self.kind, "op": op, "version": version, "at": self.clock.now_ms(), **fields}

    async def apply(self, record: dict[str, Any]) -> None:
        """Apply a config record of this kind (live or in replay)."""
        version = record["version"]
        if record["op"] == "put":
            stored = {"spec": record["spec"], "hash": record["hash"], "created_at": record["at"]}
            await self.store.map_set(self._keys + ":versions", {version: orjson.dumps(stored)})
            number, sequence = int(version[1:]), self._keys + ":sequence"
            current = await self.store.counter(sequence)
            if current < number:  # a replay rebuilds the counter
                await self.store.incr(sequence, number - current)
        await self.store.set_many({self._keys + ":active": version.encode()})
        await self._activate(version)

    async def refresh(self) -> None:
        """Follow the active version in the store (changes made by other processes)."""
        active = await self.store.get(self._keys + ":active")
        if active is not None and active.decode() != self.version:
            await self._activate(active.decode())

    async def _activate(self, version: str) -> None:
        compiled = self._compiled.pop(version, None)
        if compiled is None:
            compiled = self._compile((await self._stored(version))["spec"], version)
        self._compiled[version] = compiled  # the most recent last
        while len(self._compiled) > COMPILED_KEPT:
            del self._compiled[next(iter(self._compiled))]
        self.current, self.version = compiled, version

    async def _stored(self, version: str) -> dict[str, Any]:
        (blob,) = await self.store.map_get(self._keys + ":versions", [version])
        if blob is None:
            raise NotFound(f"no {self.kind} version {version!r}", field="version")
        stored: dict[str, Any] = orjson.loads(blob)
        return stored

    async def _hash_of(self, version: str) -> str:
        if version == EMPTY_VERSION:
            return content_hash(self.validate(self._empty))
        return str((await self._stored(version))["hash"])

    async def spec(self, version: str | None = None) -> dict[str, Any]:
        """A version's spec (default: the active one), with its id and creation time."""
        version = version or self.version
        if version == EMPTY_VERSION:
            return {"version": version, **self._empty}
        stored = await self._stored(version)
        return {"version": version, "created_at": to_iso(stored["created_at"]), **stored["spec"]}

    async def versions(self) -> list[dict[str, Any]]:
        found = await self.store.map_all(self._keys + ":versions")
        listing = []
        for version, blob in found.items():
            stored = orjson.loads(blob)
            listing.append(
                {
                    "version": version,
                    "created_at": to_iso(stored["created_at"]),
                    "active": version == self.version,
                }
            )
        return sorted(listing, key=lambda entry: int(entry["version"][1:]))
