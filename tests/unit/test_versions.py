"""Versioned configuration keeps a bounded number of compiled versions."""

from __future__ import annotations

from typing import Any

from relevo.clock import ManualClock
from relevo.store.memory import MemoryStore
from relevo.versions import COMPILED_KEPT, Versioned


def counting_versioned() -> tuple[Versioned[str], list[str]]:
    compiled: list[str] = []

    def compile_spec(spec: dict[str, Any], version: str) -> str:
        compiled.append(version)
        return f"{version}:{spec['value']}"

    clock = ManualClock(1_000)
    versioned: Versioned[str] = Versioned(
        "things",
        MemoryStore(clock),
        clock,
        validate=lambda raw: {"value": raw["value"]},
        compile=compile_spec,
        empty={"value": 0},
    )
    return versioned, compiled


async def put(versioned: Versioned[str], value: int) -> str:
    record = await versioned.put_record({"value": value})
    assert record is not None
    await versioned.apply(record)
    return str(record["version"])


async def test_a_long_lived_process_keeps_only_recent_compiled_versions() -> None:
    versioned, compiled = counting_versioned()
    versions = [await put(versioned, value) for value in range(1, 4 * COMPILED_KEPT)]
    assert len(versioned._compiled) == COMPILED_KEPT
    assert versioned.current == f"{versions[-1]}:{len(versions)}"

    # a recent version comes back without compiling; an old one is compiled again
    compiled.clear()
    await versioned.apply(await versioned.rollback_record(versions[-2]))
    assert compiled == []
    await versioned.apply(await versioned.rollback_record(versions[0]))
    assert compiled == [versions[0]]
    assert versioned.current == f"{versions[0]}:1"
    assert len(versioned._compiled) == COMPILED_KEPT
