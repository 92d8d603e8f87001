"""A fast path for the conditions people write most: CEL compiled to Python closures.

Why: an event evaluates about ten rules, and handing a profile to the CEL library
(converting every value it might read) costs far more than the comparisons
themselves. Most conditions are a handful of paths compared with literals
(``profile.category_counts.view['shoes']['5m'] > 3 && context.device == 'mobile'``).
For those, this module builds a Python closure that reads the variables directly
(including the lazy profile view), with CEL's semantics:

- ``&&`` / ``||`` are commutative over errors (``error && false`` is ``false``);
- ``==`` is CEL's heterogeneous equality (``1 == 1.0``; ``true != 1``);
- ordering only between numbers, strings or booleans; anything else is an error;
- a missing key, a bad index or a wrong type is an error (the rule is skipped),
  returned as an `Err` value rather than raised (errors are common and cheap here);
- ``size`` of a string counts UTF-8 bytes, like the CEL library relevo ships.

Anything outside the subset (multiplication and division, ternaries, most functions
and methods, escapes in strings, ...) returns None from `compile_fast`, and the expression runs
on the CEL library. The subset's equivalence with the library is property-tested
(`tests/unit/rules/test_fastpath.py`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any
from weakref import WeakKeyDictionary

from relevo.rules.lexer import Token, tokenize

Fast = Callable[[Mapping[str, Any]], Any]


class Unsupported(Exception):
    """The expression leaves the fast subset: use the CEL library."""


class _Failed(Exception):
    """An operand's evaluation failed (kept to decide `&&` / `||` like CEL)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def compile_fast(source: str, roots: frozenset[str]) -> Fast | None:
    """A closure evaluating `source` like CEL would, or None outside the subset."""
    try:
        parser = _Parser(tokenize(source), roots)
        node = parser.expression()
        if parser.peek() is not None:
            raise Unsupported("trailing tokens")
    except Unsupported:
        return None
    return node


class _Parser:
    def __init__(self, tokens: list[Token], roots: frozenset[str]) -> None:
        self.tokens = tokens
        self.roots = roots
        self.at = 0

    def peek(self) -> str | None:
        return self.tokens[self.at].text if self.at < len(self.tokens) else None

    def take(self, expected: str | None = None) -> Token:
        if self.at >= len(self.tokens):
            raise Unsupported("unexpected end")
        token = self.tokens[self.at]
        if expected is not None and token.text != expected:
            raise Unsupported(f"expected {expected}")
        self.at += 1
        return token

    def expression(self) -> Fast:
        node = self.disjunction()
        if self.peek() == "?":
            raise Unsupported("ternary")
        return node

    def disjunction(self) -> Fast:
        terms = [self.conjunction()]
        while self.peek() == "||":
            self.take()
            terms.append(self.conjunction())
        return terms[0] if len(terms) == 1 else _logical(terms, absorbing=True)

    def conjunction(self) -> Fast:
        terms = [self.relation()]
        while self.peek() == "&&":
            self.take()
            terms.append(self.relation())
        return terms[0] if len(terms) == 1 else _logical(terms, absorbing=False)

    def relation(self) -> Fast:
        left = self.additive()
        operator = self.peek()
        if operator in _RELATIONS:
            self.take()
            right = self.additive()
            if self.peek() in _RELATIONS:
                raise Unsupported("chained comparison")
            return _relation(operator, left, right)
        return left

    def additive(self) -> Fast:
        node = self.unary()
        while self.peek() in ("+", "-"):
            operator = self.take().text
            node = _additive(operator, node, self.unary())
        if self.peek() in ("*", "/", "%"):
            raise Unsupported("multiplicative arithmetic")
        return node

    def unary(self) -> Fast:
        if self.peek() == "!":
            self.take()
            operand = self.unary()
            return _negation(operand)
        if self.peek() == "-":
            self.take()
            token = self.take()
            if token.kind != "number":
                raise Unsupported("negation of a non-literal")
            return _constant(-_number(token.text))
        return self.member()

    def member(self) -> Fast:
        node = self.static_path() or self.primary()
        while True:
            if self.peek() == ".":
                self.take()
                name = self.take()
                if name.kind != "ident":
                    raise Unsupported("field")
                if self.peek() == "(":
                    node = self.method(node, name.text)
                else:
                    node = _field(node, name.text)
            elif self.peek() == "[":
                self.take()
                key = self.expression()
                self.take("]")
                node = _index(node, key)
            else:
                return node

    def static_path(self) -> Fast | None:
        """A variable followed by fields and literal indexes, walked by one closure."""
        tokens, at = self.tokens, self.at
        if at >= len(tokens) or tokens[at].kind != "ident" or tokens[at].text not in self.roots:
            return None
        if at + 1 < len(tokens) and tokens[at + 1].text == "(":
            return None
        root = tokens[at].text
        steps: list[str | int] = []
        at += 1
        while at < len(tokens):
            if tokens[at].text == "." and at + 1 < len(tokens) and tokens[at + 1].kind == "ident":
                if at + 2 < len(tokens) and tokens[at + 2].text == "(":
                    break  # a method call: not part of the path
                steps.append(tokens[at + 1].text)
                at += 2
            elif (
                tokens[at].text == "["
                and at + 2 < len(tokens)
                and tokens[at + 2].text == "]"
                and tokens[at + 1].kind in ("string", "number")
            ):
                key = tokens[at + 1].text
                if tokens[at + 1].kind == "string":
                    steps.append(_plain_string(key))
                else:
                    number = _number(key)
                    if not isinstance(number, int):
                        break
                    steps.append(number)
                at += 3
            else:
                break
        self.at = at
        return _path(root, tuple(steps))

    def method(self, target: Fast, name: str) -> Fast:
        self.take("(")
        if name in ("exists", "all"):
            variable = self.take()
            if variable.kind != "ident" or self.peek() != ",":
                raise Unsupported("comprehension")
            self.take(",")
            outer, self.roots = self.roots, self.roots | {variable.text}
            try:
                predicate = self.expression()
            finally:
                self.roots = outer
            self.take(")")
            return _comprehension(name == "exists", target, variable.text, predicate)
        args = self.arguments()
        if name in _STRING_METHODS and len(args) == 1:
            return _string_method(name, target, args[0])
        if name == "size" and not args:
            return _size(target)
        raise Unsupported(f"method {name}")

    def arguments(self) -> list[Fast]:
        args: list[Fast] = []
        while self.peek() != ")":
            args.append(self.expression())
            if self.peek() == ",":
                self.take()
        self.take(")")
        return args

    def primary(self) -> Fast:
        token = self.take()
        if token.kind == "number":
            return _constant(_number(token.text))
        if token.kind == "string":
            return _constant(_plain_string(token.text))
        if token.text == "(":
            node = self.expression()
            self.take(")")
            return node
        if token.text == "[":
            items: list[Fast] = []
            while self.peek() != "]":
                items.append(self.expression())
                if self.peek() == ",":
                    self.take()
            self.take("]")
            values = [_literal(item) for item in items]
            if _ABSENT not in values:  # ['FR', 'DE']: built once
                return _constant(values)

            def listed(variables: Mapping[str, Any]) -> Any:
                values = [item(variables) for item in items]
                return next((v for v in values if type(v) is Err), values)

            return listed
        if token.kind == "ident":
            if token.text in _CONSTANTS:
                constant = _CONSTANTS[token.text]
                return lambda _: constant
            if self.peek() == "(":
                return self.call(token.text)
            if token.text not in self.roots:
                raise Unsupported("unknown variable")
            return _path(token.text, ())
        raise Unsupported(f"token {token.text!r}")

    def call(self, name: str) -> Fast:
        if name == "has":
            self.take("(")
            owner = self.primary()
            steps: list[tuple[str, Any]] = []
            while self.peek() in (".", "["):
                if self.take().text == ".":
                    field = self.take()
                    if field.kind != "ident" or self.peek() == "(":
                        raise Unsupported("has() of a call")
                    steps.append(("field", field.text))
                else:
                    steps.append(("index", self.expression()))
                    self.take("]")
            self.take(")")
            if not steps or steps[-1][0] != "field":
                raise Unsupported("has() of something other than a field")
            root = SHAPES.get(owner)
            if isinstance(root, Path) and all(kind == "field" for kind, _ in steps):
                return _has(_path(root.root, tuple(name for _, name in steps[:-1])), steps[-1][1])
            for kind, step in steps[:-1]:
                owner = _field(owner, step) if kind == "field" else _index(owner, step)
            return _has(owner, steps[-1][1])
        if name in ("size", "timestamp", "duration"):
            self.take("(")
            args = self.arguments()
            if len(args) != 1:
                raise Unsupported(f"{name} arity")
            node = {"size": _size, "timestamp": _timestamp, "duration": _duration}[name](args[0])
            if _literal(args[0]) is not _ABSENT:  # duration('24h'): parsed once, here
                value = node({})
                if type(value) is not Err:
                    return _constant(value)
            return node
        raise Unsupported(f"function {name}")


_RELATIONS = {"==", "!=", "<", "<=", ">", ">=", "in"}
_STRING_METHODS = {"contains", "startsWith", "endsWith"}
_CONSTANTS: dict[str, Any] = {"true": True, "false": False, "null": None}


def _number(text: str) -> int | float:
    if text.endswith(("u", "U")) or text.lower().startswith("0x"):
        raise Unsupported("unsigned or hex literal")
    if any(c in text for c in ".eE"):
        return float(text)
    return int(text)


def _plain_string(text: str) -> str:
    if len(text) < 2 or text[0] not in "'\"" or text[-1] != text[0] or "\\" in text:
        raise Unsupported("string with escapes, prefixes or triple quotes")
    if text.startswith(("'''", '"""')):
        raise Unsupported("triple-quoted string")
    return text[1:-1]


# -- semantics -----------------------------------------------------------------------------
#
# Errors are values here, not exceptions: a rule reading a key a profile doesn't have yet is
# common (no purchase so far), and raising costs more than the whole comparison. Every node
# passes an `Err` through unchanged, like CEL propagates errors; `&&` and `||` may absorb it.


class Err:
    """An evaluation error as a value: a stable `kind` (as in `relevo.rules.expressions`)."""

    __slots__ = ("kind", "message")

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        self.message = message

    def __repr__(self) -> str:
        return f"Err({self.kind!r}, {self.message!r})"


def _type_error(message: str) -> Err:
    return Err("type_error", message)


# -- shapes: what some closures compute, for `relevo.rules.codegen` to inline ------------


@dataclass(frozen=True, slots=True)
class Constant:
    value: Any


@dataclass(frozen=True, slots=True)
class Path:
    """A variable then fields and literal indexes; each step's missing-key error."""

    root: str
    unbound: Err
    steps: tuple[tuple[str | int, Err], ...]


@dataclass(frozen=True, slots=True)
class Logical:
    terms: tuple[Fast, ...]
    absorbing: bool


@dataclass(frozen=True, slots=True)
class Equal:
    left: Fast
    right: Fast
    negated: bool


@dataclass(frozen=True, slots=True)
class Compare:
    """An ordering against a number literal (`path > 3`); `order` takes any two values."""

    operator: str
    left: Fast
    number: int | float
    order: Callable[[Any, Any], Any]


@dataclass(frozen=True, slots=True)
class OneOf:
    """`x in ['a', 'b']`: a set lookup for strings, `contains_value` otherwise."""

    left: Fast
    strings: frozenset[str]
    options: list[Any]


@dataclass(frozen=True, slots=True)
class Ordering:
    """`left < right` (any ordering) of two operands; `order` takes any two values."""

    operator: str
    left: Fast
    right: Fast
    order: Callable[[Any, Any], Any]


@dataclass(frozen=True, slots=True)
class Has:
    """`has(owner.name)`: `function` tells it from the owner's value."""

    owner: Fast
    name: str
    function: Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Comprehension:
    """`target.exists(name, predicate)` (or `all`)."""

    exists: bool
    target: Fast
    name: str
    predicate: Fast


@dataclass(frozen=True, slots=True)
class Relation:
    """Any other binary operator: `function(left, right)` on the two values."""

    function: Callable[[Any, Any], Any]
    left: Fast
    right: Fast


@dataclass(frozen=True, slots=True)
class Call:
    """A function of one operand: `function(argument)` on its value."""

    function: Callable[[Any], Any]
    argument: Fast


Shape = (
    Constant
    | Path
    | Logical
    | Equal
    | Compare
    | OneOf
    | Ordering
    | Has
    | Comprehension
    | Relation
    | Call
)

SHAPES: WeakKeyDictionary[Fast, Shape] = WeakKeyDictionary()
"""What each closure of these kinds computes; any other closure is opaque (called)."""


_IS_MAPPING: dict[type, bool] = {dict: True}


def _is_mapping(value: Any) -> bool:
    """`isinstance(value, Mapping)`, memoized per type: ABC checks are slow on the hot path."""
    kind = type(value)
    known = _IS_MAPPING.get(kind)
    if known is None:
        known = _IS_MAPPING[kind] = isinstance(value, Mapping)
    return known


def _step(value: Any, key: str | int) -> Any:
    """One field (`.name`, `['name']`) or literal index (`[0]`) of a path, like CEL."""
    if type(value) is dict or _is_mapping(value):
        if key in value:
            return value[key]
        return Err("missing_key", f"no such key: {key}")
    if type(value) is Err:
        return value
    if type(key) is int and type(value) is list:
        if 0 <= key < len(value):
            return value[key]
        return Err("index_out_of_range", f"index out of bounds: {key}")
    return _type_error(f"can't read {key!r} of a {type(value).__name__}")


def _path(root: str, steps: tuple[str | int, ...]) -> Fast:
    unbound = Err("undefined", f"undefined variable {root!r}")
    if not steps:

        def variable(variables: Mapping[str, Any]) -> Any:
            return variables.get(root, unbound)

        SHAPES[variable] = Path(root, unbound, ())
        return variable

    # a missing key is common (no purchase yet): its error is built once, not per event
    walked = tuple((key, Err("missing_key", f"no such key: {key}")) for key in steps)

    def walk(variables: Mapping[str, Any]) -> Any:
        value = variables.get(root, unbound)
        for key, missing in walked:
            # dicts, and the lazy profile view (its `get` answers in one call)
            if type(value) is dict or _IS_MAPPING.get(type(value)):
                value = value.get(key, missing)
                if value is missing:
                    return missing
            else:
                value = _step(value, key)
        return value

    SHAPES[walk] = Path(root, unbound, walked)
    return walk


_ABSENT = object()


def _field(target: Fast, name: str) -> Fast:
    missing = Err("missing_key", f"no such key: {name}")

    def select(variables: Mapping[str, Any]) -> Any:
        value = target(variables)
        if type(value) is dict:
            return value.get(name, missing)
        if _is_mapping(value):
            return value[name] if name in value else missing  # noqa: SIM401 - lazy mappings
        if type(value) is Err:
            return value
        return _type_error(f"no field {name!r} on a {type(value).__name__}")

    return select


def _index(target: Fast, key: Fast) -> Fast:
    def index(variables: Mapping[str, Any]) -> Any:
        return index_value(target(variables), key(variables))

    SHAPES[index] = Relation(index_value, target, key)
    return index


def index_value(value: Any, at: Any) -> Any:
    """`value[at]` once both are evaluated: a map's key or a list's index, like CEL."""
    if type(value) is Err:
        return value
    if type(at) is Err:
        return at
    if _is_mapping(value):
        if isinstance(at, bool) or not isinstance(at, str | int):
            return _type_error(f"a map has no key of type {type(at).__name__}")
        return value[at] if at in value else Err("missing_key", f"no such key: {at}")
    if isinstance(value, list) and isinstance(at, int) and not isinstance(at, bool):
        if not 0 <= at < len(value):
            return Err("index_out_of_range", f"index out of bounds: {at}")
        return value[at]
    return _type_error(f"can't index a {type(value).__name__} with a {type(at).__name__}")


def _has(owner: Fast, name: str) -> Fast:
    def has_field(value: Any) -> Any:
        if _is_mapping(value):
            return name in value
        if type(value) is Err:
            return value
        return _type_error(f"has() on a {type(value).__name__}")

    def has(variables: Mapping[str, Any]) -> Any:
        return has_field(owner(variables))

    SHAPES[has] = Has(owner, name, has_field)
    return has


def _size(target: Fast) -> Fast:
    def size(variables: Mapping[str, Any]) -> Any:
        return size_value(target(variables))

    SHAPES[size] = Call(size_value, target)
    return size


def size_value(value: Any) -> Any:
    """CEL's `size()` of an evaluated value."""
    if type(value) is list:
        return len(value)
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, list | Mapping):
        return len(value)
    if type(value) is Err:
        return value
    return _type_error(f"no size of a {type(value).__name__}")


def _string_method(name: str, target: Fast, argument: Fast) -> Fast:
    test = STRING_TESTS[name]

    def method(variables: Mapping[str, Any]) -> Any:
        return test(target(variables), argument(variables))

    SHAPES[method] = Relation(test, target, argument)
    return method


def _string_test(name: str) -> Callable[[Any, Any], Any]:
    def test(value: Any, other: Any) -> Any:
        """`value.<name>(other)` once both are evaluated."""
        if type(value) is Err:
            return value
        if type(other) is Err:
            return other
        if not isinstance(value, str) or not isinstance(other, str):
            return _type_error(f"{name} needs strings")
        if name == "contains":
            return other in value
        if name == "startsWith":
            return value.startswith(other)
        return value.endswith(other)

    return test


STRING_TESTS = {name: _string_test(name) for name in sorted(_STRING_METHODS)}
"""`contains`, `startsWith`, `endsWith` of two evaluated strings."""


def _negation(operand: Fast) -> Fast:
    def negate(variables: Mapping[str, Any]) -> Any:
        value = operand(variables)
        if type(value) is bool:
            return not value
        if type(value) is Err:
            return value
        return _type_error("! needs a bool")

    return negate


def _logical(terms: list[Fast], *, absorbing: bool) -> Fast:
    """`||` (absorbing True) or `&&` (absorbing False), commutative over errors like CEL."""

    def combine(variables: Mapping[str, Any]) -> Any:
        error = None
        for term in terms:
            value = term(variables)
            if value is absorbing:
                return absorbing
            if type(value) is not bool:
                error = error or (value if type(value) is Err else NOT_BOOL)
        return error if error is not None else not absorbing

    SHAPES[combine] = Logical(tuple(terms), absorbing)
    return combine


NOT_BOOL = Err("type_error", "&& and || need bools")


def equal_values(a: Any, b: Any, negated: bool) -> Any:
    """`a == b` (or `!=`) once both sides are evaluated: errors pass, CEL's equality."""
    if type(a) is Err:
        return a
    if type(b) is Err:
        return b
    return cel_equal(a, b) is not negated


def contains_value(needle: Any, haystack: Any) -> Any:
    """`needle in haystack` once both sides are evaluated."""
    if type(needle) is Err:
        return needle
    if type(needle) is str and type(haystack) is list:
        # a string equals only an equal string, in Python as in CEL: `in` on the list
        # is exact, and a profile's segments can be dozens long
        return needle in haystack
    if isinstance(haystack, list):
        return any(cel_equal(needle, element) for element in haystack)
    if isinstance(haystack, Mapping):
        if isinstance(needle, bool):
            return False
        if not isinstance(needle, str | int):  # CEL map keys: strings, ints, bools
            return _type_error(f"a {type(needle).__name__} can't be a map key")
        return needle in haystack
    if type(haystack) is Err:
        return haystack
    return _type_error(f"'in' needs a list or a map, not a {type(haystack).__name__}")


def cel_equal(left: Any, right: Any) -> bool:
    """CEL's heterogeneous equality: numbers compare by value, other types never equal."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(cel_equal, left, right))
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return len(left) == len(right) and all(
            key in right and cel_equal(value, right[key]) for key, value in left.items()
        )
    if type(left) is not type(right):
        return False
    return bool(left == right)


def _ordered(left: Any, right: Any) -> bool:
    numbers = (int, float)
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool)
    if isinstance(left, numbers) and isinstance(right, numbers):
        return True
    return type(left) is type(right) and isinstance(left, str | dt.datetime | dt.timedelta)


def _relation(operator: str, left: Fast, right: Fast) -> Fast:
    if operator in ("==", "!="):
        negated = operator == "!="

        def equal(variables: Mapping[str, Any]) -> Any:
            a, b = left(variables), right(variables)
            kind = type(a)
            if kind is type(b) and (kind is str or kind is int):  # the common case, at once
                return (a == b) is not negated
            return equal_values(a, b, negated)

        SHAPES[equal] = Equal(left, right, negated)
        return equal
    if operator == "in":

        def contains(variables: Mapping[str, Any]) -> Any:
            return contains_value(left(variables), right(variables))

        SHAPES[contains] = Relation(contains_value, left, right)
        options = _literal(right)
        if type(options) is not list or any(type(option) is not str for option in options):
            return contains
        strings = frozenset(options)

        def one_of(variables: Mapping[str, Any]) -> Any:
            """`x in ['FR', 'DE']`: a set lookup when `x` is a string."""
            needle = left(variables)
            if type(needle) is str:
                return needle in strings
            return contains_value(needle, options)

        SHAPES[one_of] = OneOf(left, strings, options)
        return one_of
    compare = _COMPARISONS[operator]

    def order(a: Any, b: Any) -> Any:
        if type(a) is Err:
            return a
        if type(b) is Err:
            return b
        if not _ordered(a, b):
            return _type_error(f"can't order a {type(a).__name__} and a {type(b).__name__}")
        return compare(a, b)

    def ordered(variables: Mapping[str, Any]) -> Any:
        return order(left(variables), right(variables))

    SHAPES[ordered] = Ordering(operator, left, right, order)
    number = _literal(right)
    if type(number) is not int and type(number) is not float:
        return ordered

    def ordered_with_number(variables: Mapping[str, Any]) -> Any:
        """`path > 3`, the commonest condition: no call for the literal, and a number on
        the left compares at once; anything else takes the general way."""
        a = left(variables)
        kind = type(a)
        if kind is int or kind is float:
            return compare(a, number)
        return order(a, number)

    SHAPES[ordered_with_number] = Compare(operator, left, number, order)
    return ordered_with_number


def _literal(node: Fast) -> Any:
    """The value of a literal's closure (for operators that can use it directly), or
    `_ABSENT` for any other node."""
    shape = SHAPES.get(node)
    return shape.value if isinstance(shape, Constant) else _ABSENT


def _constant(value: Any) -> Fast:
    def constant(_: Mapping[str, Any]) -> Any:
        return value

    SHAPES[constant] = Constant(value)
    return constant


_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: bool(a < b),
    "<=": lambda a, b: bool(a <= b),
    ">": lambda a, b: bool(a > b),
    ">=": lambda a, b: bool(a >= b),
}


# -- arithmetic, time and comprehensions ----------------------------------------------------

_INT64 = (-(2**63), 2**63 - 1)


def _add(left: Any, right: Any, subtract: bool) -> Any:
    """CEL's `+` / `-`: same-type numbers (ints overflow at 64 bits), strings and lists
    (`+` only), and time: timestamp - timestamp, timestamp ± duration, duration ± duration."""
    kinds = (type(left), type(right))
    if kinds == (int, int):
        value = left - right if subtract else left + right
        if not _INT64[0] <= value <= _INT64[1]:
            return Err("overflow", "arithmetic overflow")
        return value
    if kinds == (float, float):
        return left - right if subtract else left + right
    if not subtract and kinds in ((str, str), (list, list)):
        return left + right
    if not subtract and isinstance(left, list) and isinstance(right, Mapping):
        return left + list(right)  # the CEL library appends a map's keys
    if isinstance(left, dt.datetime) and isinstance(right, dt.datetime) and subtract:
        return left - right
    if isinstance(left, dt.datetime | dt.timedelta) and isinstance(right, dt.timedelta):
        return left - right if subtract else left + right
    return _type_error(
        f"no {'-' if subtract else '+'} for {kinds[0].__name__} and {kinds[1].__name__}"
    )


def _additive(operator: str, left: Fast, right: Fast) -> Fast:
    function = SUBTRACT if operator == "-" else ADD

    def arithmetic(variables: Mapping[str, Any]) -> Any:
        return function(left(variables), right(variables))

    SHAPES[arithmetic] = Relation(function, left, right)
    return arithmetic


def _arithmetic_values(a: Any, b: Any, subtract: bool) -> Any:
    if type(a) is Err:
        return a
    if type(b) is Err:
        return b
    return _add(a, b, subtract)


ADD = partial(_arithmetic_values, subtract=False)
SUBTRACT = partial(_arithmetic_values, subtract=True)
"""`+` and `-` of two evaluated operands (one object each, so code generation can tell)."""

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)")
_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def _timestamp(argument: Fast) -> Fast:
    def timestamp(variables: Mapping[str, Any]) -> Any:
        return timestamp_value(argument(variables))

    SHAPES[timestamp] = Call(timestamp_value, argument)
    return timestamp


def timestamp_value(text: Any) -> Any:
    """CEL's `timestamp(text)` once its argument is evaluated."""
    if type(text) is Err:
        return text
    if not isinstance(text, str) or not _RFC3339.match(text):
        return Err("function_error", f"not an RFC 3339 timestamp: {text!r}")
    fraction = re.search(r"\.(\d+)", text)
    if fraction is not None and len(fraction.group(1)) > 6:  # Python keeps microseconds
        text = text.replace(fraction.group(0), "." + fraction.group(1)[:6])
    return dt.datetime.fromisoformat(text.upper().replace("Z", "+00:00"))


def _duration(argument: Fast) -> Fast:
    def duration(variables: Mapping[str, Any]) -> Any:
        text = argument(variables)
        if type(text) is Err:
            return text
        if not isinstance(text, str):
            return _type_error("duration() needs a string")
        sign, body = (-1, text[1:]) if text.startswith("-") else (1, text)
        parts = _DURATION.findall(body)
        if not body or "".join(number + unit for number, unit in parts) != body:
            return Err("function_error", f"not a duration: {text!r}")
        seconds = sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)
        return dt.timedelta(seconds=sign * seconds)

    return duration


PREDICATE_NOT_BOOL = _type_error("a comprehension's predicate must be a bool")


class _Bound(Mapping[str, Any]):
    """The variables, plus one comprehension variable."""

    __slots__ = ("_name", "_outer", "_value")

    def __init__(self, outer: Mapping[str, Any], name: str, value: Any) -> None:
        self._outer = outer
        self._name = name
        self._value = value

    def __getitem__(self, key: str) -> Any:
        return self._value if key == self._name else self._outer[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self._value if key == self._name else self._outer.get(key, default)

    def __iter__(self) -> Iterator[str]:
        yield self._name
        yield from (key for key in self._outer if key != self._name)

    def __len__(self) -> int:
        return len(self._outer) + (self._name not in self._outer)


def _comprehension(exists: bool, target: Fast, name: str, predicate: Fast) -> Fast:
    """`exists` / `all` as the CEL library evaluates them: in order, stopping at the first
    decisive value or error."""

    def comprehension(variables: Mapping[str, Any]) -> Any:
        collection = target(variables)
        if type(collection) is Err:
            return collection
        if not isinstance(collection, list | Mapping):
            return _type_error(f"can't iterate a {type(collection).__name__}")
        for element in collection:
            value = predicate(_Bound(variables, name, element))
            if type(value) is Err:
                return value
            if type(value) is not bool:
                return PREDICATE_NOT_BOOL
            if value is exists:
                return exists
        return not exists

    SHAPES[comprehension] = Comprehension(exists, target, name, predicate)
    return comprehension
