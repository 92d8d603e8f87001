"""Measure the two CEL libraries for Python on what the rules engine needs.

Why this exists: the rules engine evaluates CEL conditions on every ingested event and on
every decision, so the choice of library is decided by numbers measured here, in one run, on
the same activation -- not by reputation. The activation mirrors the real profile, event and
context shapes (see docs/rules.md).

Measured for ``common-expression-language`` (module ``cel``, Rust-backed) and ``cel-python``
(module ``celpy``, pure Python; both its interpreted and its transpiling runner):

* compile time per expression;
* activation build time (converting the Python dicts once per event);
* evaluation time per expression on a prebuilt activation, and with the conversion included;
* error quality: a syntax error's position, unknown functions detected at compile time,
  the runtime message for a missing map key;
* features: string-keyed map indexing, ``.contains()``, ``in``, ``has()``, timestamps and
  durations, int-vs-double comparison.

Run: ``python bench/cel_libraries.py``. Prints a table; the last line is one JSON object.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import cel
import celpy

PROFILE: dict[str, Any] = {
    "user_id": "u1",
    "counts": {
        t: {"5m": 3, "1h": 5, "24h": 9, "30d": 20, "total": 31}
        for t in ("view", "click", "add_to_cart", "purchase", "search")
    },
    "category_counts": {
        "view": {
            c: {"5m": 4, "1h": 4, "24h": 4, "30d": 4, "total": 4}
            for c in ("electronics", "books", "toys", "garden", "fashion", "home")
        }
    },
    "first_seen": {"view": "2026-11-26T10:00:00.000Z"},
    "last_seen": {"view": "2026-11-26T10:04:00.000Z"},
    "rfm": {"recency_days": 2.5, "frequency": 1, "monetary": 59.9},
    "session": {"id": "s1", "started_at": "2026-11-26T10:00:00.000Z", "events": 4, "count": 2},
    "affinities": {"electronics": 3.2, "books": 1.1, "toys": 0.4},
    "recent_items": [f"sku{i}" for i in range(20)],
    "cart": [{"item_id": "sku1", "quantity": 2}],
    "segments": ["vip", "newsletter"],
    "consent": {"personalization": True},
    "attributes": {"tier": "gold"},
}
CONTEXT: dict[str, Any] = {
    "device": "mobile",
    "country": "FR",
    "referrer": "https://instagram.com/p/abc",
    "page": "/p/1",
    "user_agent": "Mozilla/5.0",
}
EVENT: dict[str, Any] = {
    "event_id": "e1",
    "type": "view",
    "user_id": "u1",
    "session_id": "s1",
    "timestamp": "2026-11-26T10:05:00.000Z",
    "item_id": "sku1",
    "category": "electronics",
    "context": CONTEXT,
    "properties": {},
}
ACTIVATION: dict[str, Any] = {"profile": PROFILE, "event": EVENT, "context": CONTEXT}

# Realistic conditions, one per feature a rule author will reach for.
EXPRESSIONS: dict[str, str] = {
    "threshold": "profile.category_counts.view['electronics']['5m'] > 3",
    "context": "context.device == 'mobile' && context.referrer.contains('instagram')",
    "in_list": "'vip' in profile.segments",
    "has": "has(profile.rfm.monetary) && profile.rfm.monetary > 50.0",
    "time": "timestamp(event.timestamp) - timestamp(profile.first_seen.view) > duration('4m')",
    "compound": "event.type == 'view' && profile.counts.view['24h'] >= 5 "
    "&& profile.affinities['electronics'] > 2.0",
    "exists": "profile.cart.exists(c, c.quantity > 1)",
}

FEATURES: dict[str, str] = {
    "map_string_key": "profile.category_counts.view['electronics']['5m'] == 4",
    "contains": "context.referrer.contains('instagram')",
    "in": "'vip' in profile.segments",
    "has_present": "has(profile.rfm.monetary)",
    "has_absent": "!has(profile.nope)",
    "timestamp_duration": "timestamp(event.timestamp) - timestamp(profile.first_seen.view)"
    " == duration('5m')",
    "int_vs_double": "profile.counts.view['5m'] < 3.5",
}

SYNTAX_ERROR = "profile.counts.view['5m'] >\n  && context.device"
UNKNOWN_FUNCTION = "nosuchfn(profile.segments) > 1"
MISSING_KEY = "profile.counts.view['2w'] > 1"


def per_call_us(fn: Callable[[], object], budget_s: float = 0.25) -> float:
    """Mean microseconds per call, timing enough calls to fill the budget (after a warm-up)."""
    fn()
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= budget_s:
            return elapsed / n * 1e6
        n *= 2 if elapsed < budget_s / 10 else 1 + int(budget_s / max(elapsed, 1e-9))


class RustCel:
    """Adapter over ``common-expression-language``: compile once, one Context per event."""

    name = "common-expression-language"

    def __init__(self) -> None:
        self.version = _version("common-expression-language")

    def compile(self, src: str) -> Any:
        return cel.compile(src)

    def activation(self, values: dict[str, Any]) -> Any:
        return cel.Context(values)

    def evaluate(self, program: Any, activation: Any) -> Any:
        return program.execute(activation)

    def evaluate_raw(self, program: Any, values: dict[str, Any]) -> Any:
        return program.execute(values)

    def syntax_position(self, src: str) -> str | None:
        try:
            cel.compile(src)
        except ValueError as exc:
            m = re.search(r"<input>:(\d+):(\d+):", str(exc))
            return f"line {m.group(1)} col {m.group(2)}" if m else None
        return None

    def unknown_function_at_compile(self, src: str) -> bool:
        try:
            cel.compile(src)
        except ValueError:
            return True
        return False

    def static_references(self, src: str) -> bool:
        # The compiled program lists the functions it calls: a checker can be built on it.
        return "nosuchfn" in cel.compile(src).functions()


class CelPython:
    """Adapter over ``cel-python``; ``runner`` picks its interpreter or its transpiler."""

    def __init__(self, runner: type[celpy.Runner], label: str) -> None:
        # cel-python caches one lark parser per process, built with the first runner's tree
        # class; the transpiler needs its own tree class, so drop the cache first.
        celpy.CELParser.CEL_PARSER = None
        self.env = celpy.Environment(runner_class=runner)
        self.name = f"cel-python ({label})"
        self.version = _version("cel-python")

    def compile(self, src: str) -> Any:
        return self.env.program(self.env.compile(src))

    def activation(self, values: dict[str, Any]) -> Any:
        return {k: celpy.json_to_cel(v) for k, v in values.items()}

    def evaluate(self, program: Any, activation: Any) -> Any:
        return program.evaluate(activation)

    def evaluate_raw(self, program: Any, values: dict[str, Any]) -> Any:
        return program.evaluate(self.activation(values))

    def syntax_position(self, src: str) -> str | None:
        try:
            self.env.compile(src)
        except celpy.CELParseError as exc:
            if exc.line is not None:
                return f"line {exc.line} col {exc.column}"
        return None

    def unknown_function_at_compile(self, src: str) -> bool:
        try:
            self.compile(src)
        except Exception:
            return True
        return False

    def static_references(self, src: str) -> bool:
        # The lark tree can be walked, but there is no API listing referenced functions.
        return False


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


def measure(lib: Any) -> dict[str, Any]:
    programs = {k: lib.compile(v) for k, v in EXPRESSIONS.items()}
    compile_us = sum(
        per_call_us(lambda s=s: lib.compile(s), 0.1) for s in EXPRESSIONS.values()
    ) / len(EXPRESSIONS)
    act = lib.activation(ACTIVATION)
    build_us = per_call_us(lambda: lib.activation(ACTIVATION))
    eval_us = {k: per_call_us(lambda p=p: lib.evaluate(p, act)) for k, p in programs.items()}
    raw_us = per_call_us(lambda: lib.evaluate_raw(programs["threshold"], ACTIVATION))
    features: dict[str, bool] = {}
    for name, src in FEATURES.items():
        try:
            features[name] = bool(lib.evaluate(lib.compile(src), act))
        except Exception:
            features[name] = False
    try:
        lib.evaluate(lib.compile(MISSING_KEY), act)
        missing_msg = "(no error)"
    except Exception as exc:
        missing_msg = f"{type(exc).__name__}: {str(exc)[:70]}"
    return {
        "library": lib.name,
        "version": lib.version,
        "compile_us": round(compile_us, 1),
        "activation_build_us": round(build_us, 1),
        "eval_us_mean": round(sum(eval_us.values()) / len(eval_us), 2),
        "eval_us": {k: round(v, 2) for k, v in eval_us.items()},
        "eval_with_conversion_us": round(raw_us, 1),
        "syntax_error_position": lib.syntax_position(SYNTAX_ERROR),
        "unknown_function_at_compile": lib.unknown_function_at_compile(UNKNOWN_FUNCTION),
        "lists_referenced_functions": lib.static_references(UNKNOWN_FUNCTION),
        "missing_key_error": missing_msg,
        "features": features,
    }


def main() -> None:
    factories: list[Callable[[], Any]] = [
        RustCel,
        lambda: CelPython(celpy.InterpretedRunner, "interpreted"),
        lambda: CelPython(celpy.CompiledRunner, "transpiled"),
    ]
    # One library at a time: each cel-python environment resets the shared parser.
    results = [measure(make()) for make in factories]
    rows = [
        ("version", "version"),
        ("compile µs/expr", "compile_us"),
        ("activation build µs/event", "activation_build_us"),
        ("eval µs/expr (prebuilt activation)", "eval_us_mean"),
        ("eval µs incl. dict conversion", "eval_with_conversion_us"),
        ("syntax error position", "syntax_error_position"),
        ("unknown fn rejected at compile", "unknown_function_at_compile"),
        ("lists referenced functions", "lists_referenced_functions"),
    ]
    width = 36
    cols = [r["library"] for r in results]
    colw = max(len(c) for c in cols) + 2
    print("metric".ljust(width) + "".join(c.ljust(colw) for c in cols))
    for label, key in rows:
        print(label.ljust(width) + "".join(str(r[key]).ljust(colw) for r in results))
    for expr in EXPRESSIONS:
        print(
            f"  eval µs {expr}".ljust(width)
            + "".join(str(r["eval_us"][expr]).ljust(colw) for r in results)
        )
    for feat in FEATURES:
        print(
            f"  supports {feat}".ljust(width)
            + "".join(str(r["features"][feat]).ljust(colw) for r in results)
        )
    for r in results:
        print(f"missing key [{r['library']}]: {r['missing_key_error']}")
    layer = measure_relevo_layer()
    print(
        f"relevo Expression.compile (cel + reference checks): {layer['compile_us']} µs/expr; "
        f"unknown function rejected at compile: {layer['unknown_function_position']}"
    )
    print(
        json.dumps(
            {"bench": "cel_libraries", "results": results, "relevo_layer": layer},
            ensure_ascii=False,
        )
    )


def measure_relevo_layer() -> dict[str, Any]:
    """What relevo adds on top of the chosen library: the compile-time reference checks."""
    from relevo.rules.expressions import Expression, ExpressionCompileError

    compile_us = sum(
        per_call_us(lambda s=s: Expression.compile(s), 0.1) for s in EXPRESSIONS.values()
    ) / len(EXPRESSIONS)
    try:
        Expression.compile(UNKNOWN_FUNCTION)
        position = None
    except ExpressionCompileError as exc:
        position = f"line {exc.position.line} col {exc.position.column}" if exc.position else "?"
    return {"compile_us": round(compile_us, 1), "unknown_function_position": position}


if __name__ == "__main__":
    main()
