"""A site's own profile dictionaries: trained from its profiles, stored, learnt by all.

The built-in dictionary (0) knows what every profile repeats; a site's profiles also
repeat its own item ids, categories, user and session id shapes, which only its own
profiles can teach: a dictionary trained on ~2,000 of them makes documents about a
quarter smaller (docs/operations.md, "Profile dictionaries").

- `train` samples profiles (`Store.sample_keys`), trains a 16 KB zstd dictionary on
  their compact layout without what identifies a person (`impersonal`: a dictionary is
  kept forever, never erased with a user), stores it under a new number
  (`dictionaries.key`, numbers from the `LAST_KEY` increment: never reused) and, when
  it compresses profiles it was not trained on better than the active one, activates
  it (`ACTIVE_KEY`). Run by ``relevo store train-dictionary``, or once automatically
  (`AutoTraining`).
- `refresh` makes a process write with the store's active dictionary: at start and
  every `REFRESH_S` in the background, so writers follow an activation within seconds.
  Until then they write with the previous one, which every process can read.
- `learn`, called by every `Store.docs_read`, loads the dictionaries its documents name
  that the process has not met (a document written by a process that activated a new
  one a moment ago): a read never fails for want of a dictionary that is stored.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TypeVar

import msgspec
import zstandard

from relevo.errors import InvalidInput
from relevo.features import compact
from relevo.features.dictionaries import (
    ACTIVE_KEY,
    KEY_PREFIX,
    LAST_KEY,
    LEVEL,
    MissingDictionary,
    key,
)
from relevo.features.profile import ProfileState, decode
from relevo.store.base import DocRead, Store

log = logging.getLogger(__name__)

SAMPLE = 2_000
"""Profiles a dictionary is trained on; a quarter more are sampled, and every fifth one
sampled is held out to measure it on (500 beside 2,000)."""
SIZE = 16_384
"""Bytes of a trained dictionary: 8 KB gives documents ~3% larger, 32 KB ~1% smaller."""
MIN_SAMPLE = 200
"""Fewer profiles than this teach a dictionary too little to be worth a number."""
REFRESH_S = 5.0
"""How often a process checks which dictionary is active (one GET)."""
TRAINING_CHECK_S = 60.0
"""How often a process checks whether the store is ready for its first site dictionary."""
TRAINING_LOCK = KEY_PREFIX + "training"
TRAINING_LEASE_MS = 600_000
SLICE = 50
READ_SLICE = 250
"""Profiles decoded or laid out between two yields to the event loop (a few ms); and
`READ_SLICE` read from the store at once."""

_PROFILE_PREFIX, _PROFILE_SUFFIX = "{u:", "}:profile"
A = TypeVar("A")
B = TypeVar("B")


@dataclass(frozen=True, slots=True)
class Trained:
    """What `train` did: the new dictionary, and mean document bytes on held-out
    profiles with the dictionary active before and with it."""

    number: int
    bytes: int
    profiles: int
    previous: int
    mean_bytes_before: float
    mean_bytes_after: float
    activated: bool

    def to_dict(self) -> dict[str, int | float | bool]:
        return asdict(self)


async def learn(store: Store, values: Sequence[bytes | None]) -> None:
    """Load the dictionaries `values` name that `store.dictionaries` does not know.

    One that is not stored (a restore without the dictionary keys) is left unknown:
    decoding its documents raises `MissingDictionary`, which says what to restore.
    """
    missing = store.dictionaries.unknown(values)
    if not missing:
        return
    numbers = sorted(missing)
    for number, data in zip(numbers, await store.get_many(list(map(key, numbers))), strict=True):
        if data is not None:
            store.dictionaries.add(number, data)


async def refresh(store: Store) -> int:
    """Write with the store's active dictionary from now on (loading it if need be)."""
    dictionaries = store.dictionaries
    value = await store.get(ACTIVE_KEY)
    if value is None:
        return dictionaries.active
    number = int(value)
    if number not in dictionaries:
        (data,) = await store.get_many([key(number)])
        if data is None:
            raise MissingDictionary(
                f"profile dictionary {number} is active but not stored (key {key(number)!r}): "
                "restore it with the profiles"
            )
        dictionaries.add(number, data)
    dictionaries.activate(number)
    return number


async def train(
    store: Store, *, sample: int = SAMPLE, size: int = SIZE, activate: bool = True
) -> Trained:
    """Train a dictionary on the store's profiles, store it under a new number, and
    activate it if it compresses held-out profiles better than the active one."""
    states = await _sample_states(store, sample + sample // 4)
    if len(states) < MIN_SAMPLE:
        raise InvalidInput(
            f"{len(states)} profiles in the store: a dictionary needs at least {MIN_SAMPLE}"
        )
    held_out = await _sliced(compact.layout, states[4::5])  # measured on, as stored
    training = await _sliced(
        lambda state: compact.layout(impersonal(state)),
        [state for i, state in enumerate(states) if i % 5 != 4],
    )
    try:
        data = await asyncio.to_thread(_train, training, size)
    except zstandard.ZstdError as error:
        raise InvalidInput(f"zstd could not train a dictionary: {error}") from error
    number = await store.incr(LAST_KEY)
    await store.set_many({key(number): data})
    dictionaries = store.dictionaries
    dictionaries.add(number, data)
    previous = dictionaries.active
    before = statistics.fmean(len(dictionaries.compress(raw, previous)) for raw in held_out)
    after = statistics.fmean(len(dictionaries.compress(raw, number)) for raw in held_out)
    activated = activate and after < before
    if activated:
        await store.set_many({ACTIVE_KEY: str(number).encode()})
        dictionaries.activate(number)
    log.info(
        "profile dictionary %d trained on %d profiles: %.1f -> %.1f bytes a document%s",
        number,
        len(training),
        before + 1,
        after + 1,
        ", active" if activated else ", not activated",
    )
    return Trained(number, len(data), len(training), previous, before + 1, after + 1, activated)


def _train(samples: Sequence[bytes], size: int) -> bytes:
    buffers: list[bytes | bytearray | memoryview] = [*samples]
    data: bytes = zstandard.train_dictionary(size, buffers, level=LEVEL, threads=1).as_bytes()
    return data


def impersonal(state: ProfileState) -> ProfileState:
    """The state without what names or describes the person: user, session and client
    ids, the free-form attributes (an email, a phone number), the event ids that armed
    timers. Why: a dictionary is a substring store of its samples, kept forever (the
    documents written with it need it) and never erased with a user, so it must hold
    none of theirs. What stays is what the catalog and the rules name (item ids,
    categories, event types, segments, consent purposes). It costs 5-9 bytes a document
    (2-4%): the dictionary no longer learns the shape of the site's ids."""
    session = state.session
    return msgspec.structs.replace(
        state,
        user_id="",
        session=None if session is None else msgspec.structs.replace(session, id="", client_id=""),
        attributes={},
        timers={
            rule: msgspec.structs.replace(timer, armed_by="")
            for rule, timer in state.timers.items()
        },
    )


async def _sample_states(store: Store, limit: int) -> list[ProfileState]:
    """Up to `limit` stored profiles the compact layout holds (`compact.layout`)."""
    found = await store.sample_keys(_PROFILE_PREFIX, _PROFILE_SUFFIX, limit)
    marks_keys = [name.removesuffix(":profile") + ":applied" for name in found]
    reads = [DocRead(*pair) for pair in zip(found, marks_keys, strict=True)]
    docs = []
    for start in range(0, len(reads), READ_SLICE):  # one read of 2,500 held requests ~0.15 s
        docs += await store.docs_read(reads[start : start + READ_SLICE])

    def state_of(value: bytes | None) -> ProfileState | None:
        if value is None:
            return None
        state = decode(value, store.dictionaries)
        try:
            compact.layout(state)
        except (ValueError, TypeError):  # a state only the earlier layout holds
            return None
        return state

    return [state for state in await _sliced(state_of, [doc.value for doc in docs]) if state]


async def _sliced(function: Callable[[A], B], items: Sequence[A]) -> list[B]:
    """`function` over `items`, yielding to the event loop after every `SLICE`. Why:
    training may run in a serving process (`AutoTraining`), and decoding and laying out
    its 2,500 profiles at once held that process's requests for ~0.6 s. Not a thread:
    the store's zstd (de)compressors are shared with the requests and not thread-safe."""
    found: list[B] = []
    for start in range(0, len(items), SLICE):
        found.extend(map(function, items[start : start + SLICE]))
        await asyncio.sleep(0)
    return found


class AutoTraining:
    """The first site dictionary, trained without an operator: once the store holds
    `min_profiles` profiles and has never had one, by one process (a lease)."""

    def __init__(self, store: Store, min_profiles: int) -> None:
        self.store = store
        self.min_profiles = min_profiles
        self.owner = uuid.uuid4().hex

    async def run_once(self) -> Trained | None:
        """Train now if it is time and no other process is at it; what it did."""
        store = self.store
        if self.min_profiles <= 0 or await store.counter(LAST_KEY):
            return None
        if len(await store.sample_keys(_PROFILE_PREFIX, _PROFILE_SUFFIX, self.min_profiles)) < (
            self.min_profiles
        ):
            return None
        if not await store.lease(TRAINING_LOCK, self.owner, TRAINING_LEASE_MS):
            return None
        try:
            if await store.counter(LAST_KEY):  # another process trained meanwhile
                return None
            return await train(store)
        finally:
            await store.release(TRAINING_LOCK, self.owner)
