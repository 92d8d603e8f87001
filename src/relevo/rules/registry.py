"""Versioned rule sets: every change is a new immutable version; one version is active.

Changes are log records (kind ``rules``), applied like events: so the embedded store
rebuilds them on replay, a replay evaluates each event with the rule set that was
active at its place in the log, and Redis deployments get an audit trail. Versions
are ``v1``, ``v2``, ... from a store counter, unique across processes. Other API
processes pick a change up within a second (`refresh`); the process that made it,
at once.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from relevo.clock import Clock, to_iso
from relevo.errors import NotFound
from relevo.rules.engine import RuleSet
from relevo.rules.model import parse_rule_set
from relevo.store.base import Store

VERSIONS = "rules:versions"
ACTIVE = "rules:active"
SEQUENCE = "rules:sequence"
EMPTY_VERSION = "v0"


def content_hash(spec: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(spec, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


class RuleRegistry:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self.current = RuleSet.from_dict({"rules": []}, EMPTY_VERSION)
        self._compiled: dict[str, RuleSet] = {}

    @staticmethod
    def validate(raw: Any) -> dict[str, Any]:
        """A rule set's canonical JSON, or `RuleSetValidationError` listing every problem."""
        return parse_rule_set(raw).model_dump(mode="json", exclude_unset=True)

    async def put_record(self, raw: Any) -> dict[str, Any] | None:
        """The log record that makes `raw` the active rule set; None if it already is."""
        spec = self.validate(raw)
        digest = content_hash(spec)
        if digest == await self._hash_of(self.current.version):
            return None
        version = f"v{await self.store.incr(SEQUENCE)}"
        return {
            "op": "put",
            "version": version,
            "spec": spec,
            "hash": digest,
            "at": self.clock.now_ms(),
        }

    async def rollback_record(self, version: str | None) -> dict[str, Any]:
        """The log record that reactivates `version` (default: the one active before)."""
        versions = await self.versions()
        if version is None:
            known = [v["version"] for v in versions]
            index = (
                known.index(self.current.version) if self.current.version in known else len(known)
            )
            if index == 0:
                raise NotFound(
                    "there is no earlier rule set version to roll back to", field="version"
                )
            version = known[index - 1]
        elif version not in {v["version"] for v in versions}:
            raise NotFound(f"no rule set version {version!r}", field="version")
        return {"op": "activate", "version": version, "at": self.clock.now_ms()}

    async def apply(self, record: dict[str, Any]) -> None:
        """Apply a rules record (live or in replay)."""
        version = record["version"]
        if record["op"] == "put":
            stored = {"spec": record["spec"], "hash": record["hash"], "created_at": record["at"]}
            await self.store.map_set(VERSIONS, {version: orjson.dumps(stored)})
            number = int(version[1:])
            if await self.store.counter(SEQUENCE) < number:  # a replay rebuilds the counter
                await self.store.incr(SEQUENCE, number - await self.store.counter(SEQUENCE))
        await self.store.set_many({ACTIVE: version.encode()})
        await self._activate(version)

    async def refresh(self) -> None:
        """Follow the active version in the store (changes made by other processes)."""
        active = await self.store.get(ACTIVE)
        if active is not None and active.decode() != self.current.version:
            await self._activate(active.decode())

    async def _activate(self, version: str) -> None:
        compiled = self._compiled.get(version)
        if compiled is None:
            compiled = RuleSet.from_dict((await self._stored(version))["spec"], version)
            self._compiled[version] = compiled
        self.current = compiled

    async def _stored(self, version: str) -> dict[str, Any]:
        (blob,) = await self.store.map_get(VERSIONS, [version])
        if blob is None:
            raise NotFound(f"no rule set version {version!r}", field="version")
        stored: dict[str, Any] = orjson.loads(blob)
        return stored

    async def _hash_of(self, version: str) -> str | None:
        if version == EMPTY_VERSION:
            return content_hash({"rules": []})
        return str((await self._stored(version))["hash"])

    async def spec(self, version: str | None = None) -> dict[str, Any]:
        version = version or self.current.version
        if version == EMPTY_VERSION:
            return {"version": version, "rules": []}
        stored = await self._stored(version)
        return {"version": version, "created_at": to_iso(stored["created_at"]), **stored["spec"]}

    async def versions(self) -> list[dict[str, Any]]:
        found = await self.store.map_all(VERSIONS)
        listing = []
        for version, blob in found.items():
            stored = orjson.loads(blob)
            listing.append(
                {
                    "version": version,
                    "created_at": to_iso(stored["created_at"]),
                    "rules": len(stored["spec"].get("rules", [])),
                    "active": version == self.current.version,
                }
            )
        return sorted(listing, key=lambda entry: int(entry["version"][1:]))
