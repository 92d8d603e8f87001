"""The zstd dictionaries of profile documents (`profile.COMPACT_V2`), by number.

A profile is a few hundred bytes: too short for a compressor to learn from itself, so
what it saves comes from a dictionary of what profiles repeat. Two kinds:

- **0, built in**: trained once on neutral synthetic profiles (event type names, the
  layout's recurring bytes, no catalog's names), shipped in the package
  (``profile-dictionary-0.zdict``, made by ``python -m bench.profile_dictionary``).
  Every process has it: the first documents of a new store use it.
- **1, 2, ...: the site's**: trained from the store's own profiles (its item ids,
  categories, user id shapes, session patterns): documents a quarter smaller on the
  memory benchmark. Stored in the store under its number (`key`), made the one new
  documents use by the active pointer (`ACTIVE_KEY`); see `relevo.features.site_dictionaries`.

A document names its dictionary (a varint after its first byte). A dictionary is never
changed once written (documents that name it would no longer read) and a number is
never reused (`LAST_KEY` only grows): a better dictionary is a new number, and the old
ones stay, so every document stays readable. Each process keeps the dictionaries it met
in a `Dictionaries`, forever: immutable, a stored dictionary is loaded once.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from importlib import resources

import zstandard

from relevo.errors import Unavailable
from relevo.features.profile import COMPACT_V2
from relevo.store import keys

BUILTIN = 0
LEVEL = 3
"""zstd's default level: 3 µs a profile; higher levels gain a byte or two for 3x the time."""
KEY_PREFIX = keys.PROFILE_DICTIONARIES
ACTIVE_KEY = KEY_PREFIX + "active"
"""The number of the dictionary new documents use (absent: the built-in one)."""
LAST_KEY = KEY_PREFIX + "last"
"""The last number given (an increment): numbers are never reused."""

_PARAMETERS = zstandard.ZstdCompressionParameters.from_level(
    LEVEL,
    # the frame without what a document does not need: the 4-byte magic number (the
    # document's first byte says what follows), a checksum (Redis and snapshots keep
    # bytes intact), the dictionary id (the header names it); the content size stays,
    # so decompression allocates once.
    format=zstandard.FORMAT_ZSTD1_MAGICLESS,
    write_checksum=0,
    write_dict_id=0,
    write_content_size=1,
)


def key(number: int) -> str:
    """The store key of dictionary `number` (its own slot on a cluster: loaded once)."""
    return KEY_PREFIX + str(number)


def builtin_data() -> bytes:
    """Dictionary 0: never change it (documents naming it would no longer read)."""
    return (resources.files("relevo.features") / "profile-dictionary-0.zdict").read_bytes()


@cache
def builtin_only() -> Dictionaries:
    """A registry of dictionary 0 alone: for code without a store (tests, benchmarks,
    the embedded store's rare compressed document). Not to be added to."""
    return Dictionaries()


class MissingDictionary(Unavailable):
    """A document names a dictionary the store does not hold (a restore without it)."""


class _Codec:
    """One dictionary, digested once for both directions (zstd's CDict and DDict)."""

    def __init__(self, data: bytes) -> None:
        compress = zstandard.ZstdCompressionDict(data)
        compress.precompute_compress(compression_params=_PARAMETERS)
        self.compressor = zstandard.ZstdCompressor(
            dict_data=compress, compression_params=_PARAMETERS
        )
        self.decompressor = zstandard.ZstdDecompressor(
            dict_data=zstandard.ZstdCompressionDict(data),
            format=zstandard.FORMAT_ZSTD1_MAGICLESS,
        )


class Dictionaries:
    """The dictionaries this process knows, and the one it writes with (`active`).

    >>> dictionaries = Dictionaries()
    >>> blob = dictionaries.compress(b"view click add_to_cart" * 3)
    >>> blob[0], dictionaries.decompress(blob) == b"view click add_to_cart" * 3
    (0, True)
    >>> sorted(dictionaries.unknown([bytes((COMPACT_V2, 0)), bytes((COMPACT_V2, 7)), None]))
    [7]
    """

    def __init__(self) -> None:
        self._codecs = {BUILTIN: _Codec(builtin_data())}
        self.active = BUILTIN

    def __contains__(self, number: int) -> bool:
        return number in self._codecs

    def add(self, number: int, data: bytes) -> None:
        """Know dictionary `number` (immutable: a number already known is kept)."""
        if number not in self._codecs:
            self._codecs[number] = _Codec(data)

    def activate(self, number: int) -> None:
        """Write with dictionary `number` from now on (it must be known)."""
        if number not in self._codecs:
            raise MissingDictionary(f"profile dictionary {number} is not loaded")
        self.active = number

    def compress(self, raw: bytes, number: int | None = None) -> bytes:
        """The dictionary's number (varint) and the zstd frame of `raw` (`active` unless
        `number` says which)."""
        number = self.active if number is None else number
        head = _ONE_BYTE[number] if number < 0x80 else _varint(number)
        return head + self._codecs[number].compressor.compress(raw)

    def decompress(self, blob: bytes | memoryview) -> bytes:
        """`compress` undone; `MissingDictionary` when the dictionary is not known.

        A number below 128 (one byte: every dictionary of a store that trained fewer) is
        read without `_unvarint`'s call and loop, on every profile read."""
        number = blob[0]
        if number < 0x80:
            start = 1
        else:
            number, start = _unvarint(blob)
        codec = self._codecs.get(number)
        if codec is None:
            raise MissingDictionary(
                f"a profile names dictionary {number}, which the store does not hold "
                f"(key {key(number)!r}): restore it from the backup the profiles came from"
            )
        data: bytes = codec.decompressor.decompress(blob[start:])
        return data

    def unknown(self, values: Iterable[bytes | None]) -> set[int]:
        """The dictionaries that `COMPACT_V2` documents among `values` name and this
        process does not know yet (what a store read loads before answering)."""
        found: set[int] = set()
        codecs = self._codecs
        for value in values:
            if value and value[0] == COMPACT_V2 and len(value) > 1:
                if value[1] < 0x80:  # the common case: a number below 128, one byte
                    if value[1] not in codecs:
                        found.add(value[1])
                else:
                    number, _ = _unvarint(memoryview(value)[1:])
                    if number not in codecs:
                        found.add(number)
        return found


_ONE_BYTE = [bytes((number,)) for number in range(0x80)]
"""The varint of each number below 128: itself."""


def _varint(number: int) -> bytes:
    """Unsigned LEB128 (one byte below 128)."""
    out = bytearray()
    while number > 0x7F:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def _unvarint(blob: bytes | memoryview) -> tuple[int, int]:
    """(number, bytes it took) of the varint at the start of `blob`."""
    number = shift = position = 0
    while True:
        byte = blob[position]
        number |= (byte & 0x7F) << shift
        position += 1
        if not byte & 0x80:
            return number, position
        shift += 7
