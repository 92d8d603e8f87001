"""CEL conditions: compile once, evaluate many times, never let a bad rule take the engine down.

Why CEL, and why this library: rule authors (marketers, integrators) write conditions over a
profile, an event, a request context and, at decision time, an item. CEL is side-effect free,
terminates, and is sandboxed, so a rule can never reach outside the data it is given. The
library is ``common-expression-language`` (Rust-backed); ``bench/cel_libraries.py`` measured it
against ``cel-python`` and ``docs/rules.md`` records the numbers and the reasons.

Three jobs live here:

* :meth:`Expression.compile` parses a condition once, at rule-set load time, and rejects what
  would only fail later: syntax errors, unknown functions and unknown variables (the library
  checks neither of the last two before evaluation, so we do it from the compiled program's own
  list of references). Errors carry the rule id, the field and a line/column position.
* :meth:`Expression.evaluate` runs it against an :class:`Activation`. A runtime failure (a key the
  profile does not have yet, a type mismatch) raises :class:`ExpressionEvaluationError`, which the
  engine counts per rule and skips: one broken rule must not stop the others.
* :meth:`Expression.explain` says which values the condition saw: each top-level ``&&``/``||``
  term and each referenced path (``profile.counts.view['5m']``) with its value or its error.

>>> expr = Expression.compile("profile.segments.exists(s, s == 'vip')", rule_id="vip")
>>> expr.evaluate(Activation({"profile": {"segments": ["vip"]}}))
True
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import cel

from relevo.features.profile import plain
from relevo.rules.codegen import compile_condition
from relevo.rules.fastpath import Err, Fast
from relevo.rules.lexer import Token, tokenize

#: Top-level variables a condition may use. Which of them are bound depends on where the
#: expression sits (see ``relevo.rules.model``): ``item`` only exists per candidate item.
ALL_ROOTS: Final = frozenset({"profile", "event", "context", "item", "now", "placement"})

#: Functions the Rust CEL runtime implements natively (probed against 0.10; a unit test keeps
#: this list honest). Operators (``_+_``, ``!_``, ``@in``...) are recognised by their shape.
KNOWN_FUNCTIONS: Final = frozenset(
    {
        "size",
        "contains",
        "startsWith",
        "endsWith",
        "matches",
        "int",
        "uint",
        "double",
        "string",
        "bytes",
        "timestamp",
        "duration",
        "dyn",
        "type",
        "getFullYear",
        "getMonth",
        "getDayOfYear",
        "getDayOfMonth",
        "getDate",
        "getDayOfWeek",
        "getHours",
        "getMinutes",
        "getSeconds",
        "getMilliseconds",
    }
)

# Macros are expanded by the parser; ``has`` and the comprehensions never show up as functions,
# but the lexer still sees them followed by "(".
_MACROS: Final = frozenset({"has", "all", "exists", "exists_one", "map", "filter"})
_COMPREHENSIONS: Final = frozenset({"all", "exists", "exists_one", "map", "filter"})
_KEYWORDS: Final = frozenset({"true", "false", "null", "in"})
#: Type names are identifiers in CEL (``type(x) == int``); the runtime binds them itself.
_TYPE_NAMES: Final = frozenset(
    {"int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type"}
)


class RulesError(Exception):
    """Base of the rules engine's errors; the core maps it into ``relevo.errors``."""


@dataclass(frozen=True)
class SourcePosition:
    """Where in the expression something went wrong: 1-based line and column, 0-based offset."""

    line: int
    column: int
    offset: int

    def __str__(self) -> str:
        return f"{self.line}:{self.column}"


class ExpressionCompileError(RulesError, ValueError):
    """A condition that cannot be compiled; raised at load time so a bad rule set never goes live.

    Carries enough for an API error body (``field``) and an editor squiggle (``position``).
    """

    def __init__(
        self,
        message: str,
        *,
        source: str,
        rule_id: str | None,
        field: str,
        position: SourcePosition | None,
    ) -> None:
        self.message = message
        self.source = source
        self.rule_id = rule_id
        self.field = field
        self.position = position
        where = f" at {position}" if position else ""
        who = f"rule {rule_id!r}: " if rule_id else ""
        super().__init__(f"{who}{field}: {message}{where}")


class ExpressionEvaluationError(RulesError):
    """A condition that failed at run time for this activation.

    ``kind`` is a stable, low-cardinality label (``missing_key``, ``type_error``...) fit for a
    metric; ``message`` is the library's text for humans.
    """

    def __init__(self, kind: str, message: str, *, rule_id: str | None, field: str) -> None:
        self.kind = kind
        self.message = message
        self.rule_id = rule_id
        self.field = field
        who = f"rule {rule_id!r}: " if rule_id else ""
        super().__init__(f"{who}{field}: {kind}: {message}")


class ActivationError(RulesError):
    """The input values could not be converted to CEL values (e.g. a Python ``set``)."""


# --------------------------------------------------------------------------------------------
# A small CEL lexer. It runs only on text the CEL parser already accepted, so it can stay small:
# its job is to locate names (for error positions), find the paths a condition reads (for
# ``explain`` and for converting only the profile fields a rule set needs) and split top-level
# terms.


def _position(source: str, offset: int) -> SourcePosition:
    line = source.count("\n", 0, offset) + 1
    column = offset - (source.rfind("\n", 0, offset) + 1) + 1
    return SourcePosition(line, column, offset)


def _string_literal(text: str) -> str | None:
    """The value of a plain quoted literal without escapes; ``None`` when it is anything fancier."""
    if len(text) >= 2 and text[0] in "'\"" and text[-1] == text[0] and "\\" not in text:
        if text.startswith(("'''", '"""')):
            return None
        return text[1:-1]
    return None


@dataclass(frozen=True)
class _Analysis:
    """What the lexer learned about an expression."""

    roots: tuple[Token, ...]  # identifiers that name a top-level variable
    calls: tuple[Token, ...]  # identifiers directly followed by "("
    bound: frozenset[str]  # comprehension variables
    paths: tuple[str, ...]  # readable paths, in order of appearance
    reads: tuple[tuple[str, ...], ...]  # (root, field, field...): what a projection keeps
    terms: tuple[str, ...]  # top-level && / || operands


def _analyse(source: str) -> _Analysis:
    toks = tokenize(source)
    n = len(toks)

    def text(i: int) -> str:
        return toks[i].text if 0 <= i < n else ""

    bound = {
        text(i + 2)
        for i in range(n)
        if toks[i].kind == "ident"
        and toks[i].text in _COMPREHENSIONS
        and text(i - 1) == "."
        and text(i + 1) == "("
        and i + 2 < n
        and toks[i + 2].kind == "ident"
        and text(i + 3) == ","
    }
    roots: list[Token] = []
    calls: list[Token] = []
    paths: list[str] = []
    reads: list[tuple[str, ...]] = []
    for i, tok in enumerate(toks):
        if tok.kind != "ident" or tok.text in _KEYWORDS:
            continue
        if tok.text in _TYPE_NAMES and text(i + 1) != "(":
            continue
        if text(i + 1) == "(":
            calls.append(tok)
            continue
        if text(i - 1) in (".", ".?"):
            continue
        roots.append(tok)
        if tok.text in bound:
            if tok.text in ALL_ROOTS:  # a comprehension variable shadowing a root: be safe
                reads.append((tok.text,))
            continue
        # Walk the path: .field, ['key'] or [0], stopping before a method call. ``static``
        # keeps the leading run of plain field names: the part a projection can follow.
        j, end, static, is_static = i + 1, tok.end, [tok.text], True
        while j < n:
            if text(j) == "." and j + 1 < n and toks[j + 1].kind == "ident" and text(j + 2) != "(":
                step: str | None = toks[j + 1].text
                end, next_j = toks[j + 1].end, j + 2
            elif (
                text(j) == "["
                and j + 2 < n
                and toks[j + 1].kind in ("string", "number")
                and text(j + 2) == "]"
            ):
                step = _string_literal(toks[j + 1].text)
                end, next_j = toks[j + 2].end, j + 3
            else:
                break
            if step is None:
                is_static = False
            elif is_static:
                static.append(step)
            j = next_j
        path = source[tok.start : end]
        if path not in paths:
            paths.append(path)
        reads.append(tuple(static))
    return _Analysis(
        roots=tuple(roots),
        calls=tuple(calls),
        bound=frozenset(bound),
        paths=tuple(paths),
        reads=tuple(dict.fromkeys(reads)),
        terms=_top_level_terms(source, toks),
    )


def _top_level_terms(source: str, toks: list[Token]) -> tuple[str, ...]:
    depth, cuts, has_ternary = 0, [], False
    for tok in toks:
        if tok.text in ("(", "[", "{"):
            depth += 1
        elif tok.text in (")", "]", "}"):
            depth -= 1
        elif depth == 0 and tok.text in ("&&", "||"):
            cuts.append(tok)
        elif depth == 0 and tok.text == "?":
            has_ternary = True
    if not cuts or has_ternary:
        return (source.strip(),)
    terms, start = [], 0
    for cut in cuts:
        terms.append(source[start : cut.start].strip())
        start = cut.end
    terms.append(source[start:].strip())
    return tuple(terms)


# --------------------------------------------------------------------------------------------


_Node: TypeAlias = "dict[str, _Node] | bool"  # True: keep this value whole


class Projection:
    """The parts of the input values a group of expressions can read, and nothing else.

    Why: converting Python values to CEL costs about a microsecond per string (see
    ``bench/rules.py``), far more than evaluating a condition, and a profile holds hundreds of
    values while a rule reads a handful. Projecting first keeps results identical, because an
    expression can only reach data through the paths the lexer found: a path is followed
    through plain field names, and whatever comes after (an index, a method, a comprehension)
    keeps that value whole. Absent keys stay absent, so ``has()`` and missing-key errors are
    unchanged.

    >>> p = Projection([("profile", "counts", "view"), ("profile", "segments")])
    >>> p.project({"profile": {"counts": {"view": 1, "click": 2}, "segments": ["a"], "x": 3}})
    {'profile': {'counts': {'view': 1}, 'segments': ['a']}}
    """

    __slots__ = ("_trie",)

    def __init__(self, reads: Iterable[tuple[str, ...]]) -> None:
        trie: dict[str, _Node] = {}
        for path in reads:
            node = trie
            for k, seg in enumerate(path):
                child = node.get(seg)
                if child is True:
                    break
                if k == len(path) - 1:
                    node[seg] = True
                    break
                if not isinstance(child, dict):
                    child = node[seg] = {}
                node = child
        self._trie = trie

    @classmethod
    def of(cls, expressions: Iterable[Expression | None]) -> Projection:
        return cls(r for e in expressions if e is not None for r in e.reads)

    @property
    def roots(self) -> frozenset[str]:
        return frozenset(self._trie)

    def project(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The read parts of ``values``; variables nothing reads are left out."""
        return {k: _project(values[k], node) for k, node in self._trie.items() if k in values}

    def project_one(self, name: str, value: Any) -> Any:
        node = self._trie.get(name)
        return None if node is None else _project(value, node)


def _project(value: Any, node: _Node) -> Any:
    if node is True or not isinstance(value, Mapping):
        return value
    assert isinstance(node, dict)
    return {k: _project(value[k], child) for k, child in node.items() if k in value}


class Activation:
    """The variables one evaluation sees, converted to CEL values once.

    Why a class: converting a profile to CEL values costs far more than evaluating a condition
    (see ``bench/cel_libraries.py``), so the engine converts once per event or decision and
    evaluates every candidate rule against the same converted values. It is a per-call
    scratch object: :meth:`bind` mutates it (one ``item`` after another at decision time).
    """

    __slots__ = ("_context", "values")

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values: dict[str, Any] = {name: plain(value) for name, value in values.items()}
        try:
            self._context = cel.Context(self.values)
        except _ESCAPES:
            raise
        except BaseException as exc:  # ValueError for unconvertible values; see _ESCAPES
            raise ActivationError(str(exc)) from exc

    def bind(self, name: str, value: Any) -> None:
        """Set one variable, converting only it (cheap: an item, not the whole profile)."""
        try:
            self._context.add_variable(name, value)
        except _ESCAPES:
            raise
        except BaseException as exc:
            raise ActivationError(f"cannot convert {name!r}: {exc}") from exc
        self.values[name] = value

    @property
    def context(self) -> cel.Context:
        return self._context


class Scope:
    """The variables of one evaluation, for both engines: raw for the fast path, converted
    for the CEL library only when a rule that needs it runs (see `relevo.rules.fastpath`).
    """

    __slots__ = ("_activation", "_projection", "values")

    def __init__(self, values: Mapping[str, Any], projection: Projection) -> None:
        # a dict is taken as it is: callers build one for this evaluation, and `bind` is
        # the only change made to it
        self.values: dict[str, Any] = values if type(values) is dict else dict(values)
        self._projection = projection
        self._activation: Activation | None = None

    @property
    def activation(self) -> Activation:
        """The CEL activation of the projected values (built once, on first need)."""
        if self._activation is None:
            self._activation = Activation(self._projection.project(self.values))
        return self._activation

    @property
    def converted(self) -> bool:
        """Whether the CEL library's activation was built (then `bind` converts too)."""
        return self._activation is not None

    def bind(self, name: str, value: Any) -> None:
        self.values[name] = value
        if self._activation is not None:
            self._activation.bind(name, self._projection.project_one(name, value))


# A panic inside the Rust library surfaces as pyo3's PanicException, which derives from
# BaseException, not Exception. One bad rule must not take the engine down, so everything is
# caught except what asks the process to stop.
_ESCAPES: Final = (KeyboardInterrupt, SystemExit, GeneratorExit)

_ERROR_KINDS: Final[tuple[tuple[type[BaseException], str], ...]] = (
    (KeyError, "missing_key"),
    (IndexError, "index_out_of_range"),
    (ZeroDivisionError, "division_by_zero"),
    (TypeError, "type_error"),
    (OverflowError, "overflow"),
    (ValueError, "value_error"),
    (RuntimeError, "function_error"),
)


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, RuntimeError) and str(exc).startswith("Undefined variable"):
        return "undefined"
    for cls, kind in _ERROR_KINDS:
        if isinstance(exc, cls):
            return kind
    return "error" if isinstance(exc, Exception) else "internal"


def _error_message(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"no such key: {exc.args[0] if exc.args else ''}"
    msg = str(exc)
    # The library appends a paragraph of generic advice to overload errors; keep the first line.
    return msg.split(". CEL does not coerce", 1)[0].split("\n", 1)[0]


def jsonable(value: Any) -> Any:
    """CEL results as JSON-friendly data for explanations (timestamps as ISO, durations in s)."""
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return aware.isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.timedelta):
        return f"{value.total_seconds():g}s"
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


@dataclass(frozen=True)
class SeenValue:
    """One sub-expression and what it evaluated to (or why it did not)."""

    source: str
    value: Any = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source}
        if self.error is None:
            out["value"] = jsonable(self.value)
        else:
            out["error"] = self.error
        return out


@dataclass(frozen=True)
class Explanation:
    """Why a condition came out the way it did: its result and the values it saw."""

    source: str
    result: Any = None
    error: str | None = None
    terms: tuple[SeenValue, ...] = ()
    paths: tuple[SeenValue, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "result": jsonable(self.result),
            "error": self.error,
            "terms": [t.to_dict() for t in self.terms],
            "paths": [p.to_dict() for p in self.paths],
        }


@dataclass(frozen=True)
class Expression:
    """A compiled CEL expression, immutable and safe to share between threads and requests.

    Build it with :meth:`compile`; the constructor is for the compiler.
    """

    source: str
    rule_id: str | None
    field: str
    program: cel.Program = dataclasses.field(repr=False, compare=False)
    variables: frozenset[str] = frozenset()
    #: What the expression can read, as (root, field, field...) paths; everything below the
    #: last field is read whole (see :class:`Projection`).
    reads: tuple[tuple[str, ...], ...] = ()
    paths: tuple[str, ...] = ()
    terms: tuple[str, ...] = ()
    #: The same condition as a Python closure, when it is in the fast subset.
    fast: Fast | None = dataclasses.field(default=None, repr=False, compare=False)

    @classmethod
    def compile(
        cls,
        source: str,
        *,
        rule_id: str | None = None,
        field: str = "when",
        roots: Iterable[str] = ALL_ROOTS,
    ) -> Expression:
        """Parse and check ``source``; raise :class:`ExpressionCompileError` on any problem.

        ``roots`` are the variables bound where this expression runs, so that ``item`` in an
        event rule's ``when`` is rejected at load time rather than failing on every event.
        """
        allowed = frozenset(roots)

        def fail(message: str, offset: int | None) -> ExpressionCompileError:
            pos = None if offset is None else _position(source, offset)
            return ExpressionCompileError(
                message, source=source, rule_id=rule_id, field=field, position=pos
            )

        if not isinstance(source, str) or not source.strip():
            raise fail("empty expression", None)
        try:
            program = cel.compile(source)
        except _ESCAPES:
            raise
        except BaseException as exc:  # ValueError for parse errors; see _ESCAPES for the rest
            message, offset = _parse_error(source, str(exc))
            raise fail(message, offset) from exc
        analysis = _analyse(source)

        for name in program.functions():
            if _is_operator(name) or name in KNOWN_FUNCTIONS or name in _MACROS:
                continue
            tok = next((t for t in analysis.calls if t.text == name), None)
            raise fail(
                f"unknown function {name!r} (known: {', '.join(sorted(KNOWN_FUNCTIONS))})",
                tok.start if tok else None,
            )
        variables = frozenset(program.variables()) - analysis.bound - _TYPE_NAMES
        for name in sorted(variables - allowed, key=lambda v: _first_offset(analysis.roots, v)):
            tok = next((t for t in analysis.roots if t.text == name), None)
            raise fail(
                f"unknown variable {name!r} (available here: {', '.join(sorted(allowed))})",
                tok.start if tok else None,
            )
        return cls(
            source=source,
            rule_id=rule_id,
            field=field,
            program=program,
            variables=variables,
            reads=tuple(r for r in analysis.reads if r[0] in variables),
            paths=tuple(p for p in analysis.paths if p.split(".")[0].split("[")[0] in allowed),
            terms=analysis.terms,
            fast=compile_condition(source, allowed),
        )

    def evaluate(self, scope: Scope | Activation) -> Any:
        """Evaluate; any runtime failure becomes :class:`ExpressionEvaluationError`."""
        if isinstance(scope, Scope) and self.fast is not None:
            value = self.fast(scope.values)
            if type(value) is Err:
                raise self.failure(value)
            return value
        try:
            if isinstance(scope, Scope):
                scope = scope.activation
            return self.program.execute(scope.context)
        except ActivationError as exc:
            raise ExpressionEvaluationError(
                "activation", str(exc), rule_id=self.rule_id, field=self.field
            ) from exc
        except _ESCAPES:
            raise
        except BaseException as exc:  # CEL errors arrive as several builtin types; see _ESCAPES
            raise ExpressionEvaluationError(
                _error_kind(exc), _error_message(exc), rule_id=self.rule_id, field=self.field
            ) from exc

    def evaluate_bool(self, scope: Scope | Activation) -> bool:
        """Evaluate a condition; a non-boolean result is an error, not a truthiness guess."""
        value = self.evaluate(scope)
        if not isinstance(value, bool):
            raise self.failure(value)
        return value

    def failure(self, value: Any) -> ExpressionEvaluationError:
        """The error of a condition that gave `value`: the fast path's `Err`, or a value
        that is not a bool (what `evaluate_bool` raises; a generated loop records it)."""
        if type(value) is Err:
            return ExpressionEvaluationError(
                value.kind, value.message, rule_id=self.rule_id, field=self.field
            )
        return ExpressionEvaluationError(
            "not_boolean",
            f"condition evaluated to {type(value).__name__} {value!r}, expected bool",
            rule_id=self.rule_id,
            field=self.field,
        )

    def explain(self, activation: Activation) -> Explanation:
        """Evaluate the whole, each top-level term and each referenced path; never raises."""
        result, error = _try(self.program, activation)
        terms = tuple(_seen(t, activation) for t in self.terms) if len(self.terms) > 1 else ()
        paths = tuple(_seen(p, activation) for p in self.paths)
        return Explanation(self.source, result, error, terms, paths)


def _seen(source: str, activation: Activation) -> SeenValue:
    try:
        program = cel.compile(source)
    except _ESCAPES:
        raise
    except BaseException as exc:
        return SeenValue(source, error=f"cannot compile: {exc}")
    value, error = _try(program, activation)
    return SeenValue(source, value, error)


def _try(program: cel.Program, activation: Activation) -> tuple[Any, str | None]:
    try:
        return program.execute(activation.context), None
    except _ESCAPES:
        raise
    except BaseException as exc:  # explanation must report, not raise
        return None, f"{_error_kind(exc)}: {_error_message(exc)}"


def _is_operator(name: str) -> bool:
    return name.startswith(("_", "@", "!"))


def _first_offset(tokens: Iterable[Token], name: str) -> int:
    return next((t.start for t in tokens if t.text == name), 1 << 30)


_PARSE_LOCATION = re.compile(r"<input>:(\d+):(\d+):\s*(?:Syntax error:\s*)?(.*)")


def _parse_error(source: str, text: str) -> tuple[str, int | None]:
    """First ``ERROR: <input>:L:C: message`` of the library's report, as (message, offset)."""
    m = _PARSE_LOCATION.search(text)
    if m is None:
        return text, None
    line, column, message = int(m.group(1)), int(m.group(2)), m.group(3).strip()
    lines = source.split("\n")
    offset = sum(len(s) + 1 for s in lines[: line - 1]) + column - 1
    return message, min(max(offset, 0), len(source))
