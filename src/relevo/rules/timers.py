"""The pure timer planner: which timers an event arms, pushes back or cancels -- as data.

Why pure: timers ("no purchase within 15 minutes after add_to_cart") must behave the same when
events are replayed from the log as when they arrive live, and must work on every store. So
this module never reads a clock or a store. Given the timer rules and one event it returns
operations; the store applies them atomically per (rule, user), and a scheduler asks
:func:`due` with the event-time clock.

Semantics the store implements (:func:`apply_op` is the executable reference; a store's
contract test can compare against it):

* :class:`Arm` -- an ``after`` event: upsert the timer with ``due_at_ms = event time +
  inactive_for``. An already armed timer keeps the later deadline, and is re-attributed to the
  later arming event, so applying the same event twice (at-least-once delivery) changes nothing.
* :class:`Rearm` -- further activity (by default any event of the user that is not in
  ``unless``; ``reset_on`` narrows it): if the timer exists, push its deadline to
  ``event time + inactive_for``; never pull it earlier (out-of-order events).
* :class:`Cancel` -- an ``unless`` event: delete the timer, unless the timer was armed by an
  event later than the cancelling one (a late-arriving older purchase does not cancel a newer
  cart).

Firing exactly once per arming: a timer's :attr:`Timer.token` changes on every write that
changes it (it is the arming event id plus the deadline). The scheduler reads a due timer and
deletes it with compare-and-delete on the token; only the worker whose delete succeeded fires
it, and a timer pushed back in between no longer matches. The outbox message id derives from
the token too, so even a crash between delete and outbox write cannot emit twice for one arming.

Known limit: an ``after`` event that arrives after a *newer* ``unless`` event re-arms the timer
(the cancel left no tombstone). The core can close that gap by keeping the last cancel time per
(rule, user) and dropping :class:`Arm` ops older than it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from relevo.rules.model import Rule, TimerTrigger


def timer_key(rule_id: str, user_id: str) -> str:
    """The one storage key of the timer of ``rule_id`` for ``user_id``.

    The user id sits in a Redis hash tag (``{...}``) so that every key of one user lands in the
    same cluster slot as the user's profile, which lets a Lua script touch both atomically.

    >>> timer_key("cart-abandoned", "u1")
    'timer:{u1}:cart-abandoned'
    """
    return f"timer:{{{user_id}}}:{rule_id}"


def to_epoch_ms(value: Any) -> int:
    """Event time as epoch milliseconds, from an ISO-8601 string, an aware datetime or ms.

    Naive datetimes and ISO strings without an offset are rejected: event time is UTC inside,
    and guessing a zone would make replays disagree with live processing.

    >>> to_epoch_ms("2026-11-26T10:00:00.000Z")
    1795687200000
    """
    if isinstance(value, bool):
        raise TypeError("a boolean is not a timestamp")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("timestamp has no time zone")
        delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        return delta // dt.timedelta(milliseconds=1)
    raise TypeError(f"not a timestamp: {type(value).__name__}")


def from_epoch_ms(ms: int) -> dt.datetime:
    """The aware UTC datetime of epoch milliseconds (what CEL sees as ``now``)."""
    return _EPOCH + _MILLISECOND * ms  # half the cost of `timedelta(milliseconds=ms)`


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MILLISECOND = dt.timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class Timer:
    """An armed timer as the store keeps it."""

    rule_id: str
    user_id: str
    due_at_ms: int
    armed_by_event_id: str
    armed_at_ms: int

    @property
    def key(self) -> str:
        return timer_key(self.rule_id, self.user_id)

    @property
    def token(self) -> str:
        """Changes whenever the timer is re-armed or pushed back: the compare-and-delete value."""
        return f"{self.armed_by_event_id}@{self.due_at_ms}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "user_id": self.user_id,
            "due_at_ms": self.due_at_ms,
            "armed_by_event_id": self.armed_by_event_id,
            "armed_at_ms": self.armed_at_ms,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Timer:
        return cls(
            rule_id=str(data["rule_id"]),
            user_id=str(data["user_id"]),
            due_at_ms=int(data["due_at_ms"]),
            armed_by_event_id=str(data["armed_by_event_id"]),
            armed_at_ms=int(data["armed_at_ms"]),
        )


@dataclass(frozen=True, slots=True)
class Arm:
    """Arm (or re-arm) the timer of ``rule_id`` for ``user_id``."""

    rule_id: str
    user_id: str
    due_at_ms: int
    armed_by_event_id: str
    armed_at_ms: int

    @property
    def key(self) -> str:
        return timer_key(self.rule_id, self.user_id)


@dataclass(frozen=True, slots=True)
class Rearm:
    """Push an existing timer's deadline back to ``due_at_ms``; no-op if none is armed."""

    rule_id: str
    user_id: str
    due_at_ms: int
    reset_by_event_id: str
    at_ms: int

    @property
    def key(self) -> str:
        return timer_key(self.rule_id, self.user_id)


@dataclass(frozen=True, slots=True)
class Cancel:
    """Delete the timer (an ``unless`` event happened)."""

    rule_id: str
    user_id: str
    cancelled_by_event_id: str
    at_ms: int

    @property
    def key(self) -> str:
        return timer_key(self.rule_id, self.user_id)


TimerOp = Arm | Rearm | Cancel


def due(timer: Timer, now_ms: int) -> bool:
    """Whether ``timer`` should fire at event time ``now_ms`` (the deadline itself counts)."""
    return now_ms >= timer.due_at_ms


def apply_op(current: Timer | None, op: TimerOp) -> Timer | None:
    """The reference semantics of one operation on the stored timer (``None``: no timer)."""
    if isinstance(op, Arm):
        if current is not None and current.armed_at_ms > op.armed_at_ms:
            # An older arming event arriving late: keep the newer attribution.
            return Timer(
                current.rule_id,
                current.user_id,
                max(current.due_at_ms, op.due_at_ms),
                current.armed_by_event_id,
                current.armed_at_ms,
            )
        due_at = op.due_at_ms if current is None else max(current.due_at_ms, op.due_at_ms)
        return Timer(op.rule_id, op.user_id, due_at, op.armed_by_event_id, op.armed_at_ms)
    if isinstance(op, Rearm):
        if current is None or op.due_at_ms <= current.due_at_ms:
            return current
        return Timer(
            current.rule_id,
            current.user_id,
            op.due_at_ms,
            current.armed_by_event_id,
            current.armed_at_ms,
        )
    if current is not None and current.armed_at_ms > op.at_ms:
        return current
    return None


@dataclass(frozen=True, slots=True)
class _Plan:
    arm: tuple[tuple[str, int], ...]
    rearm: tuple[tuple[str, int], ...]
    cancel: tuple[str, ...]


class TimerPlanner:
    """Timer rules indexed by event type, so an event only looks at the rules it affects.

    Immutable after construction; plans per event type are precomputed for every type a timer
    rule names, and one default plan serves every other type (only ``"*"`` arming and the
    default "any activity resets" apply to those).
    """

    __slots__ = ("_default", "_plans", "_rule_ids", "_rules")

    def __init__(self, rules: Iterable[Rule]) -> None:
        timer_rules: list[tuple[str, TimerTrigger]] = [
            (r.id, r.trigger) for r in rules if isinstance(r.trigger, TimerTrigger) and r.enabled
        ]
        self._rules = tuple(timer_rules)
        self._rule_ids = tuple(rule_id for rule_id, _ in self._rules)
        named: set[str] = set()
        for _, trig in timer_rules:
            named.add(trig.after)
            named.update(trig.unless)
            named.update(trig.reset_on or ())
        named.discard("*")
        self._plans = {t: self._plan_for(t) for t in named}
        # "*" is never a real event type and is in no list, so it yields the default plan.
        self._default = self._plan_for("*")

    def _plan_for(self, event_type: str) -> _Plan:
        arm, rearm, cancel = [], [], []
        for rule_id, trig in self._rules:
            if event_type in trig.unless:
                cancel.append(rule_id)
            elif trig.after in (event_type, "*"):
                arm.append((rule_id, trig.inactive_for_ms))
            elif trig.resets_on(event_type):
                rearm.append((rule_id, trig.inactive_for_ms))
        return _Plan(tuple(arm), tuple(rearm), tuple(cancel))

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return self._rule_ids

    def plan(
        self, event: Mapping[str, Any], armed: Collection[str] | None = None
    ) -> tuple[TimerOp, ...]:
        """Timer operations caused by ``event``; empty when it has no user or no timestamp.

        ``armed``: the rule ids whose timer the user has armed, when the core knows them (one
        read of a per-user set). Rearm and Cancel ops for other rules would be no-ops, so they
        are left out; without it every timer rule an event touches gets an op, and a rule set
        with many timer rules costs the store one conditional write per rule per event.
        """
        if not self._rules:
            return ()
        user_id, event_id = event.get("user_id"), event.get("event_id")
        if not user_id or not event_id:
            return ()
        try:
            at = to_epoch_ms(event.get("timestamp"))
        except (TypeError, ValueError):
            return ()
        uid, eid = str(user_id), str(event_id)
        plan = self._plans.get(str(event.get("type")), self._default)
        cancel, rearm = plan.cancel, plan.rearm
        if armed is not None:
            cancel = tuple(r for r in cancel if r in armed)
            rearm = tuple((r, ms) for r, ms in rearm if r in armed)
        ops: list[TimerOp] = [Cancel(rule_id, uid, eid, at) for rule_id in cancel]
        ops += [Arm(rule_id, uid, at + ms, eid, at) for rule_id, ms in plan.arm]
        ops += [Rearm(rule_id, uid, at + ms, eid, at) for rule_id, ms in rearm]
        return tuple(ops)
