"""What every event log offers.

A record is acknowledged only after `append` returned: by then it is durable
(fsynced to SQLite's WAL in embedded mode; written to a Redis Stream, whose
durability follows Redis' AOF settings, in Redis mode). Consumers (the profile
applier after a crash, the Parquet archiver) read records back by position.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

import msgspec

RecordKind = Literal["event", "item", "timer", "config", "models"]
"""`event`: a user's event; `item`: a catalog upsert; `timer`: a timer firing;
`config`: a configuration change (rules, placements, experiments, flags; see
`relevo.versions`); `models`: a model version registered or promoted. Events and
timer firings update profiles."""


class LogRecord(msgspec.Struct, gc=False):
    """One entry, keyed by its user (events, timer firings) or its subject (items, config).

    `body` is the record as JSON; `position` is set once the log has stored it. Nothing
    changes a record once made, and every event's record is made twice (logged by the
    API, read back by a worker): a struct, whose ``__init__`` is msgspec's C.

    A struct the garbage collector does not track (``gc=False``: its fields are strings
    and bytes, so it can be in no reference cycle): the archiver holds 50,000 records at
    a time and a worker thousands, and as tracked objects they made the API process's
    young generation ~80,000 objects when collected, a pause of ~35 ms of CPU that
    reached the slowest decisions (`bench.load`, with a collector log).
    """

    kind: RecordKind
    key: str
    body: bytes
    position: str = ""


class EventLog(Protocol):
    async def append(self, records: Sequence[LogRecord]) -> list[str]:
        """Store records durably, in order; return their positions."""
        ...

    async def check(self) -> None:
        """Raise `relevo.errors.Unavailable` when the log can't take writes."""
        ...

    async def archive_batch(self, limit: int) -> list[LogRecord]:
        """The next records not yet archived (the same ones again until `archive_done`)."""
        ...

    async def archive_done(self, records: Sequence[LogRecord]) -> None:
        """Mark records as safely archived; the log may then forget them."""
        ...

    async def close(self) -> None: ...
