"""Sessions: runs of activity split by inactivity.

A session ends after `timeout_ms` without events (30 minutes by default), or when
the client starts a new one (a different ``session_id``). Without a client session
id, the id is derived from the session's start so it is the same in every replay;
a client id kept across a long pause gets the start appended (``abc~18c2f``).
"""

from __future__ import annotations

import msgspec


class Session(msgspec.Struct, array_like=True):
    id: str
    started_at: int
    last_at: int
    events: int = 1
    client_id: str | None = None


def touch(
    session: Session | None, ts_ms: int, client_id: str | None, timeout_ms: int
) -> tuple[Session | None, bool]:
    """The session after an event at `ts_ms`, and whether a new session started.

    An event older than the current session's start by more than the timeout
    belongs to an earlier session: it changes nothing here.

    >>> s, new = touch(None, 0, None, 1_800_000)
    >>> s.id, new
    ('s-0', True)
    >>> touch(s, 60_000, None, 1_800_000)[1], touch(s, 60_000 + 1_800_001, None, 1_800_000)[1]
    (False, True)
    """
    if session is not None:
        if ts_ms < session.started_at - timeout_ms:
            return session, False
        same_client = client_id is None or client_id == session.client_id
        if same_client and ts_ms - session.last_at <= timeout_ms:
            session.events += 1
            # comparisons, not max() and min() (their argument parsing costs more, per event)
            if ts_ms > session.last_at:
                session.last_at = ts_ms
            if ts_ms < session.started_at:
                session.started_at = ts_ms
            return session, False
    if client_id is None:
        session_id = f"s-{ts_ms:x}"
    elif session is not None and session.client_id == client_id:
        session_id = f"{client_id}~{ts_ms:x}"  # the client kept its id across a long pause
    else:
        session_id = client_id
    # positional: msgspec matches keyword arguments to fields by name, a cost per event
    return Session(session_id, ts_ms, ts_ms, 1, client_id), True
