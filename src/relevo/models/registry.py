"""Model versions: immutable folders on disk, metadata and the promoted pointer in the store.

Layout: ``<models dir>/<name>/<version>/`` holds ``meta.json`` and ``model/`` (the
model's own save format: JSON, ``.npz``, LightGBM text; never pickle). Versions are
``v1``, ``v2``, ... per name, from a store counter, so they are unique across
processes. The store keeps, per name, every version's metadata (metrics, training
window, data counts, created and promoted times) and which version is promoted.

Registering, promoting and rolling back are log records (kind ``models``), applied
like rule changes (`relevo.rules.registry`): the embedded store rebuilds them on
replay and Redis deployments get an audit trail. Every API process follows the
promoted pointer (`refresh`, every second): it loads the new version fully, off
the event loop, then swaps one reference, so a request in flight finishes with the
model it started with and none is dropped. The last few loaded versions stay in
memory, so a rollback is instant.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from relevo.clock import Clock, to_iso
from relevo.errors import InvalidInput, NotFound
from relevo.store.base import Store

log = logging.getLogger(__name__)

LOADED_KEPT = 3
"""Loaded versions kept in memory (the promoted one and the last ones, for rollbacks)."""


def versions_key(name: str) -> str:
    return "models:versions:" + name


def active_key(name: str) -> str:
    return "models:active:" + name


def sequence_key(name: str) -> str:
    return "models:sequence:" + name


NAMES = "models:names"


@dataclass(frozen=True)
class Served:
    """A loaded model version, ready to serve."""

    name: str
    version: str
    model: Any
    meta: dict[str, Any]


Loader = Callable[[str, str, Path, dict[str, Any]], Any]
"""(name, version, folder, meta) → the object serving uses; runs in a worker thread."""


class ModelRegistry:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        root: Path,
        follow: Sequence[str],
        loader: Loader,
    ) -> None:
        self.store = store
        self.clock = clock
        self.root = root
        self.follow = list(dict.fromkeys(follow))
        self.loader = loader
        self._served: dict[str, Served] = {}
        self._loaded: OrderedDict[tuple[str, str], Served] = OrderedDict()
        self._failed: dict[tuple[str, str], str] = {}
        self._lock = asyncio.Lock()

    def folder(self, name: str, version: str) -> Path:
        return self.root / name / version

    # -- records ------------------------------------------------------------------------
    async def allocate(self, name: str) -> str:
        """A new version name for `name` (unique across processes)."""
        return f"v{await self.store.incr(sequence_key(name))}"

    def register_record(self, name: str, version: str, meta: dict[str, Any]) -> dict[str, Any]:
        """The log record that registers a trained version (its folder must exist)."""
        if not (self.folder(name, version) / "meta.json").is_file():
            raise NotFound(f"no trained model in {self.folder(name, version)}", field="version")
        created = {**meta, "name": name, "version": version}
        return {"op": "register", "name": name, "version": version, "meta": created,
                "at": self.clock.now_ms()}  # fmt: skip

    async def promote_record(self, name: str, version: str) -> dict[str, Any]:
        """The log record that makes `version` the one `name` serves."""
        if await self._meta(name, version) is None:
            raise NotFound(f"no version {version!r} of model {name!r}", field="version")
        return {"op": "promote", "name": name, "version": version, "at": self.clock.now_ms()}

    async def rollback_record(self, name: str, version: str | None = None) -> dict[str, Any]:
        """The log record that goes back to `version`, or to the previously promoted one.

        Without a version, the most recently promoted version that is neither the
        current one nor itself rolled back: repeated rollbacks walk back in time.
        """
        current = await self.active_version(name)
        if version is None:
            earlier = [
                meta
                for meta in await self._metas(name)
                if meta["version"] != current
                and meta.get("promoted_at") is not None
                and not meta.get("rolled_back")
            ]
            if not earlier:
                raise NotFound(
                    f"model {name!r} has no earlier promoted version to roll back to",
                    field="version",
                )
            version = max(earlier, key=lambda meta: int(meta["promoted_at"]))["version"]
        record = await self.promote_record(name, version)
        return {**record, "rollback": True}

    async def apply(self, record: dict[str, Any]) -> None:
        """Apply a `models` log record (live, or in a replay)."""
        name, version = record["name"], record["version"]
        if record["op"] == "register":
            meta = {**record["meta"], "created_at": record["at"]}
            await self.store.map_set(versions_key(name), {version: orjson.dumps(meta)})
            await self.store.map_set(NAMES, {name: b"1"})
            number = int(version[1:])
            have = await self.store.counter(sequence_key(name))
            if have < number:  # a replay rebuilds the counter
                await self.store.incr(sequence_key(name), number - have)
            return
        if record["op"] != "promote":
            raise InvalidInput(f"unknown models record op {record['op']!r}", field="op")
        previous = await self.active_version(name)
        changed: dict[str, bytes] = {}
        promoted = await self._meta(name, version)
        if promoted is not None:
            promoted.update(promoted_at=record["at"], rolled_back=False)
            changed[version] = orjson.dumps(promoted)
        if record.get("rollback") and previous is not None and previous != version:
            left = await self._meta(name, previous)
            if left is not None:
                left["rolled_back"] = True
                changed[previous] = orjson.dumps(left)
        await self.store.map_set(versions_key(name), changed)
        await self.store.set_many({active_key(name): version.encode()})

    # -- serving ------------------------------------------------------------------------
    def served(self, name: str) -> Served | None:
        """The loaded promoted version of `name` (None when none is promoted or loadable)."""
        return self._served.get(name)

    async def refresh(self) -> None:
        """Follow the promoted pointers: load what changed, then swap it in."""
        async with self._lock:
            for name in self.follow:
                version = await self.active_version(name)
                current = self._served.get(name)
                if version is None:
                    self._served.pop(name, None)
                elif current is None or current.version != version:
                    loaded = await self._load(name, version)
                    if loaded is not None:
                        self._served[name] = loaded

    async def _load(self, name: str, version: str) -> Served | None:
        key = (name, version)
        if key in self._loaded:
            self._loaded.move_to_end(key)
            return self._loaded[key]
        if key in self._failed:
            return None
        try:
            meta = await self._meta(name, version) or {}
            folder = self.folder(name, version)
            model = await asyncio.to_thread(self.loader, name, version, folder, meta)
        except Exception as error:  # a broken version must not take serving down
            log.exception("could not load model %s %s", name, version)
            self._failed[key] = f"{type(error).__name__}: {error}"
            return None
        served = Served(name, version, model, meta)
        self._loaded[key] = served
        while len(self._loaded) > LOADED_KEPT * max(len(self.follow), 1):
            self._loaded.popitem(last=False)
        return served

    # -- reads --------------------------------------------------------------------------
    async def active_version(self, name: str) -> str | None:
        found = await self.store.get(active_key(name))
        return None if found is None else found.decode()

    async def _meta(self, name: str, version: str) -> dict[str, Any] | None:
        (blob,) = await self.store.map_get(versions_key(name), [version])
        return None if blob is None else dict(orjson.loads(blob))

    async def _metas(self, name: str) -> list[dict[str, Any]]:
        found = await self.store.map_all(versions_key(name))
        metas = [dict(orjson.loads(blob)) for blob in found.values()]
        return sorted(metas, key=lambda meta: int(meta["version"][1:]))

    async def listing(self, names: Sequence[str]) -> list[dict[str, Any]]:
        """Every version of `names`, for people: ISO times, which is promoted and served."""
        out = []
        for name in names:
            active = await self.active_version(name)
            served = self._served.get(name)
            versions = []
            for meta in await self._metas(name):
                entry = {
                    **meta,
                    "created_at": to_iso(int(meta["created_at"])),
                    "promoted_at": None
                    if meta.get("promoted_at") is None
                    else to_iso(int(meta["promoted_at"])),
                    "active": meta["version"] == active,
                }
                error = self._failed.get((name, meta["version"]))
                if error is not None:
                    entry["load_error"] = error
                versions.append(entry)
            out.append(
                {
                    "name": name,
                    "active": active,
                    "served": None if served is None else served.version,
                    "versions": versions,
                }
            )
        return out

    async def names(self) -> list[str]:
        """Names followed by serving, then every other name with registered versions."""
        registered = sorted(await self.store.map_all(NAMES))
        return list(dict.fromkeys([*self.follow, *registered]))
