"""Fast-path conditions as generated Python functions: one per condition, one per bucket.

Why: `relevo.rules.fastpath` builds a tree of closures, one call per node. An event
evaluates about ten conditions, each a few nodes deep, and with a thousand rules the
calls themselves cost more than the comparisons (issue 3 asks rules to cost at most a
fifth of ingestion). Here the commonest nodes (paths, comparisons with literals, `&&`,
`||`, `in` a literal list, constants) become straight-line statements of one function
with local variables; any other node stays its closure and is called from that code.

The closures stay the definition of the semantics: each inlined statement is the body
of its closure (see `fastpath.SHAPES`), and the property test runs the generated code
against the CEL library as it runs the closures.

Only literals of the expression (strings and numbers, as `repr`) and objects bound by
name enter the source: nothing a rule author writes is pasted as code.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from relevo.features.profile import (
    ProfileView,
    direct_contains,
    direct_has,
    direct_reader,
    direct_size,
    seen_ms_reader,
)
from relevo.rules.fastpath import (
    _IS_MAPPING,
    NOT_BOOL,
    PREDICATE_NOT_BOOL,
    SHAPES,
    STRING_TESTS,
    SUBTRACT,
    Call,
    Compare,
    Comprehension,
    Constant,
    Equal,
    Err,
    Fast,
    Has,
    Logical,
    OneOf,
    Ordering,
    Path,
    Relation,
    _step,
    compile_fast,
    contains_value,
    equal_values,
    index_value,
    size_value,
    timestamp_value,
)

MAX_DEPTH = 40
"""Nesting of `&&`/`||` terms beyond this stays a closure call (Python limits indentation)."""

_OPERATORS = {"<", "<=", ">", ">="}

NOW_MS = "@now_ms"
"""The variable holding `now` as epoch milliseconds, when the caller has it (no CEL name
can read it): `now - timestamp(...)` compared with a duration is then integer arithmetic."""


def _cost(node: Fast) -> int:
    """A rough cost of evaluating `node`: a closure or a comprehension costs most, a read
    of the profile more than one of the event or the context, a literal nothing."""
    shape = SHAPES.get(node)
    if shape is None or isinstance(shape, Comprehension):
        return 4
    if isinstance(shape, Constant):
        return 0
    if isinstance(shape, Path):
        return 2 if shape.root == "profile" else 1
    parts: tuple[Fast, ...]
    if isinstance(shape, Logical):
        parts = shape.terms
    elif isinstance(shape, Has | Call):
        parts = (shape.owner,) if isinstance(shape, Has) else (shape.argument,)
    elif isinstance(shape, Compare | OneOf):
        parts = (shape.left,)
    else:
        parts = (shape.left, shape.right)
    return sum(_cost(part) for part in parts)


_STRING_TESTS = {
    STRING_TESTS["contains"]: "{b} in {a}",
    STRING_TESTS["startsWith"]: "{a}.startswith({b})",
    STRING_TESTS["endsWith"]: "{a}.endswith({b})",
}


_MISS = object()
"""No answer yet (a memo's)."""


def _mapping(value: str) -> str:
    """Whether the local `value` holds a map (`fastpath._is_mapping` of a type seen)."""
    return f"(type({value}) is dict or ISMAP.get(type({value})))"


class _Opaque(Exception):
    """A node that can only be called with the variables, inside inlined code that binds
    a variable of its own (a comprehension's): that code can't be inlined."""


def compile_condition(source: str, roots: frozenset[str]) -> Fast | None:
    """`source` as a generated function, or None outside the fast subset."""
    node = compile_fast(source, roots)
    return None if node is None else generate(node, source)


def generate(node: Fast, source: str = "") -> Fast:
    """A function computing what the closure `node` computes, with its common nodes inlined."""
    writer = Writer()
    result = writer.emit(node, 1)
    writer.line(1, f"return {result}")
    generated: Fast = writer.define("condition", f"<condition {source[:60]!r}>")
    shape = SHAPES.get(node)
    if shape is not None:  # a bucket's code can inline it again (`generate_bucket`)
        SHAPES[generated] = shape
    return generated


def generate_bucket(
    conditions: list[Fast | None], read_now: Sequence[bool] = ()
) -> tuple[Callable[[Mapping[str, Any]], list[Any]], bool]:
    """One function evaluating a bucket's conditions in order (None: no condition), and
    whether it needs ``now`` as a value (`read_now[i]`: whether condition ``i`` mentions
    ``now``; all do when not given).

    The function returns ``(index, value)`` for each condition that is not ``False`` (true
    ones and errors), in order: an event's rules then cost one call, not one per rule.
    ``now`` is not needed when the code only subtracts times in milliseconds (`NOW_MS`,
    see `Writer.elapsed`): building the datetime costs as much as a condition.
    """
    writer = Writer()
    writer.line(1, "out = []")
    needs_now = False
    for index, node in enumerate(conditions):
        if node is None:
            writer.line(1, f"out.append(({index}, True))")
            continue
        calls = writer.calls
        result = writer.emit(node, 1)
        writer.line(1, f"if {result} is not False:")
        writer.line(2, f"out.append(({index}, {result}))")
        mentions_now = read_now[index] if index < len(read_now) else True
        needs_now = needs_now or (writer.calls > calls and mentions_now)  # a closure may read it
    writer.line(1, "return out")
    bucket: Callable[[Mapping[str, Any]], list[Any]] = writer.define(
        "bucket", f"<bucket of {len(conditions)} rules>"
    )
    return bucket, needs_now or "now" in writer.roots


class Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: dict[str, Any] = {
            "Err": Err,
            "ISMAP": _IS_MAPPING,
            "STEP": _step,
            "NOT_BOOL": NOT_BOOL,
            "EQ": equal_values,
            "CONTAINS": contains_value,
            "INDEX": index_value,
            "MISS": _MISS,
            "PROFILE_VIEW": ProfileView,
            "PREDICATE_NOT_BOOL": PREDICATE_NOT_BOOL,
        }
        self._count = 0
        self._roots: dict[str, tuple[str, Err]] = {}
        self._bound: dict[str, str] = {}  # comprehension variable -> its local name
        self.calls = 0  # closures called with the variables (they may read any)
        #: Variables the caller holds in locals of these names (a loop's item), not in `V`.
        self.given: dict[str, str] = {}
        #: Lines run once before a loop, where paths of the other variables are read.
        self.hoisted: list[str] | None = None
        self._hoisted_paths: dict[tuple[Any, ...], str] = {}
        #: The indent of a loop's body: a path of the item read there is read once.
        self.body: int | None = None
        self._body_paths: dict[tuple[Any, ...], str] = {}

    def define(self, name: str, filename: str, parameters: str = "V") -> Any:
        """The function `name(parameters)` of the lines written, the variables read at
        its top, then the hoisted lines."""
        roots = [
            f"    {variable} = V.get({root!r}, {self.bind(unbound)})"
            for root, (variable, unbound) in self._roots.items()
        ]
        lines = roots + (self.hoisted or []) + self.lines
        code = f"def {name}({parameters}):\n" + "\n".join(lines) + "\n"
        namespace = dict(self.names)
        exec(compile(code, filename, "exec"), namespace)
        return namespace[name]

    def line(self, indent: int, text: str) -> None:
        self.lines.append("    " * indent + text)

    def temp(self) -> str:
        self._count += 1
        return f"t{self._count}"

    def bind(self, value: Any) -> str:
        """A name for `value` in the function's globals."""
        self._count += 1
        name = f"k{self._count}"
        self.names[name] = value
        return name

    def emit(self, node: Fast, indent: int) -> str:
        """Statements at `indent` leaving the node's value in the returned expression."""
        shape = SHAPES.get(node)
        if indent > MAX_DEPTH or shape is None:
            return self.call(node, indent)
        if isinstance(shape, Constant):  # a name, not a literal: `1 is True` is a warning
            return self.bind(shape.value)
        if isinstance(shape, Path):
            return self.path(shape, node, indent)
        if isinstance(shape, Logical):
            return self.logical(shape, indent)
        if isinstance(shape, Equal):
            return self.equal(shape, indent)
        if isinstance(shape, Compare):
            return self.compare(shape, indent)
        if isinstance(shape, OneOf):
            return self.one_of(shape, indent)
        if isinstance(shape, Ordering):
            return self.ordering(shape, node, indent)
        if isinstance(shape, Has):
            return self.has(shape, indent)
        if isinstance(shape, Comprehension):
            return self.comprehension(shape, node, indent)
        if isinstance(shape, Relation):
            return self.relation(shape, indent)
        if isinstance(shape, Call) and shape.function is size_value:
            sized = self.sized(shape, indent)
            if sized is not None:
                return sized
        if isinstance(shape, Call):
            argument = self.emit(shape.argument, indent)
            out = self.temp()
            self.line(indent, f"{out} = {self.bind(shape.function)}({argument})")
            return out
        return self.call(node, indent)

    def call(self, node: Fast, indent: int) -> str:
        if self._bound:  # it would not see the comprehension's variable
            raise _Opaque
        self.calls += 1
        out = self.temp()
        self.line(indent, f"{out} = {self.bind(node)}(V)")
        return out

    def path(self, shape: Path, node: Fast, indent: int) -> str:
        if shape.root in self.given and shape.root not in self._bound:
            # `item.category` read in the body's straight line is there for all code after
            key = (shape.root, tuple(step for step, _ in shape.steps))
            if key in self._body_paths:
                return self._body_paths[key]
            value = self.walk(shape, node, indent)
            if indent == self.body:
                self._body_paths[key] = value
            return value
        if self.hoisted is None or shape.root in self._bound:
            return self.walk(shape, node, indent)
        # the same for every item of a loop: read once, before it (a path never raises,
        # and reading one that a term's short-circuit would have skipped changes nothing)
        key = (shape.root, tuple(step for step, _ in shape.steps))
        held = self._hoisted_paths.get(key)
        if held is None:
            lines, self.lines = self.lines, self.hoisted
            try:
                held = self._hoisted_paths[key] = self.walk(shape, node, 1)
            finally:
                self.lines = lines
        return held

    def walk(self, shape: Path, node: Fast, indent: int) -> str:
        # `walk` in fastpath: a missing key is an Err, which later steps pass on unchanged
        out = self.temp()
        bound = self._bound.get(shape.root)
        variable = bound or self.root(shape.root, shape.unbound)
        self.line(indent, f"{out} = {variable}")
        reader = None
        if shape.root == "profile" and bound is None:
            keys = tuple(key for key, _ in shape.steps)
            reader = direct_reader(keys, tuple(missing for _, missing in shape.steps))
        if reader is not None:  # the profile view's state, read directly
            self.line(indent, f"if type({out}) is PROFILE_VIEW:")
            self.line(indent + 1, f"{out} = {self.bind(reader)}({out})")
            self.line(indent + 1, f"if type({out}) is PROFILE_VIEW:")  # the reader declined
            self.line(indent + 2, f"{out} = {self.bind(node)}(V)")  # the general walk
            self.line(indent, "else:")
            indent += 1
        for key, missing in shape.steps:
            self.line(indent, f"if type({out}) is dict or ISMAP.get(type({out})):")
            self.line(indent + 1, f"{out} = {out}.get({key!r}, {self.bind(missing)})")
            self.line(indent, f"elif type({out}) is not Err:")
            self.line(indent + 1, f"{out} = STEP({out}, {key!r})")
        return out

    @property
    def roots(self) -> frozenset[str]:
        """The variables the code reads itself."""
        return frozenset(self._roots)

    def root(self, name: str, unbound: Err) -> str:
        """The local holding variable `name` (read once, at the function's top)."""
        if name in self.given:
            return self.given[name]
        return self._roots.setdefault(name, (f"r{len(self._roots)}", unbound))[0]

    def ordering(self, shape: Ordering, node: Fast, indent: int) -> str:
        # `order` in fastpath, two numbers compared at once
        elapsed = self.elapsed(shape, node, indent)
        if elapsed is not None:
            return elapsed
        if shape.operator not in _OPERATORS:
            raise ValueError(f"not an ordering: {shape.operator!r}")
        a, b = self.emit(shape.left, indent), self.emit(shape.right, indent)
        out = self.temp()
        numbers = [f"(type({x}) is int or type({x}) is float)" for x in (a, b)]
        self.line(indent, f"if {numbers[0]} and {numbers[1]}:")
        self.line(indent + 1, f"{out} = {a} {shape.operator} {b}")
        self.line(indent, "else:")
        self.line(indent + 1, f"{out} = {self.bind(shape.order)}({a}, {b})")
        return out

    def elapsed(self, shape: Ordering, node: Fast, indent: int) -> str | None:
        """`now - timestamp(profile.last_seen.<type>) > duration(...)` in milliseconds,
        when `now` is given as such too; None for any other ordering."""
        if self._bound or shape.operator not in _OPERATORS:
            return None
        limit, difference = SHAPES.get(shape.right), SHAPES.get(shape.left)
        if not isinstance(limit, Constant) or type(limit.value) is not dt.timedelta:
            return None
        if not isinstance(difference, Relation) or difference.function is not SUBTRACT:
            return None
        now, time = SHAPES.get(difference.left), SHAPES.get(difference.right)
        if not (isinstance(now, Path) and now.root == "now" and not now.steps):
            return None
        if not (isinstance(time, Call) and time.function is timestamp_value):
            return None
        seen = SHAPES.get(time.argument)
        if not (isinstance(seen, Path) and seen.root == "profile" and len(seen.steps) == 2):
            return None
        steps = tuple(key for key, _ in seen.steps)
        reader = seen_ms_reader(steps, seen.steps[1][1])
        if reader is None:
            return None
        limit_us = limit.value // dt.timedelta(microseconds=1)  # exact: no float
        profile = self.root("profile", seen.unbound)
        now_ms = self.root(NOW_MS, now.unbound)
        out = self.temp()
        self.line(indent, f"if type({profile}) is PROFILE_VIEW and type({now_ms}) is int:")
        self.line(indent + 1, f"{out} = {self.bind(reader)}({profile})")
        self.line(indent + 1, f"if type({out}) is int:")
        self.line(indent + 2, f"{out} = ({now_ms} - {out}) * 1000 {shape.operator} {limit_us}")
        self.line(indent, "else:")  # `now` or the profile given otherwise: the general way
        self.line(indent + 1, f"{out} = {self.bind(node)}(V)")
        return out

    def profile_steps(self, node: Fast) -> tuple[Path, tuple[str | int, ...]] | None:
        """The path and keys of `node` when it reads the profile (and no comprehension
        variable shadows it), for the state's direct readers; else None."""
        path = SHAPES.get(node)
        if not isinstance(path, Path) or path.root != "profile" or "profile" in self._bound:
            return None
        return path, tuple(key for key, _ in path.steps)

    def from_state(
        self, direct: Callable[[ProfileView], Any], unbound: Err, indent: int,
        general: Callable[[int], str],
    ) -> str:  # fmt: skip
        """`direct(profile)` when the profile is a view, else the expression `general`
        emits (at the indent it is given) for any other mapping."""
        out = self.temp()
        profile = self.root("profile", unbound)
        self.line(indent, f"if type({profile}) is PROFILE_VIEW:")
        self.line(indent + 1, f"{out} = {self.bind(direct)}({profile})")
        self.line(indent, "else:")
        self.line(indent + 1, f"{out} = {general(indent + 1)}")
        return out

    def sized(self, shape: Call, indent: int) -> str | None:
        """`size(profile.<list>)` from the state, when there is a way; else None."""
        found = self.profile_steps(shape.argument)
        measure = None if found is None else direct_size(found[1])
        if found is None or measure is None:
            return None
        size = self.bind(size_value)
        return self.from_state(
            measure, found[0].unbound, indent, lambda at: f"{size}({self.emit(shape.argument, at)})"
        )

    def member(self, shape: Relation, indent: int) -> str | None:
        """`'vip' in profile.segments` from the state, when there is a way; else None."""
        needle, found = SHAPES.get(shape.left), self.profile_steps(shape.right)
        if not isinstance(needle, Constant) or type(needle.value) is not str or found is None:
            return None
        check = direct_contains(found[1], needle.value)
        if check is None:
            return None
        literal = self.bind(needle.value)
        return self.from_state(
            check, found[0].unbound, indent,
            lambda at: f"CONTAINS({literal}, {self.emit(shape.right, at)})",
        )  # fmt: skip

    def has(self, shape: Has, indent: int) -> str:
        found = self.profile_steps(shape.owner)
        checker = None if found is None else direct_has(found[1], shape.name)
        function = self.bind(shape.function)
        if found is not None and checker is not None:
            return self.from_state(
                checker, found[0].unbound, indent,
                lambda at: f"{function}({self.emit(shape.owner, at)})",
            )  # fmt: skip
        value = self.emit(shape.owner, indent)
        out = self.temp()
        self.line(indent, f"{out} = {function}({value})")
        return out

    def comprehension(self, shape: Comprehension, node: Fast, indent: int) -> str:
        # `comprehension` in fastpath, the predicate inlined in a loop over a list
        if shape.name in self._bound:  # a variable shadowing another: left to the closure
            return self.call(node, indent)
        collection = self.emit(shape.target, indent)
        out, element = self.temp(), self.temp()
        mark = len(self.lines)
        self.line(indent, f"if type({collection}) is list:")
        self.line(indent + 1, f"{out} = {not shape.exists!r}")
        self.line(indent + 1, f"for {element} in {collection}:")
        self._bound[shape.name] = element
        try:
            value: str | None = self.emit(shape.predicate, indent + 2)
        except _Opaque:
            value = None
        finally:
            del self._bound[shape.name]
        if value is None:
            del self.lines[mark:]
            return self.call(node, indent)  # raises again inside another comprehension
        self.line(indent + 2, f"if {value} is {shape.exists!r}:")
        self.line(indent + 3, f"{out} = {shape.exists!r}")
        self.line(indent + 3, "break")
        self.line(indent + 2, f"if type({value}) is not bool:")
        self.line(indent + 3, f"{out} = {value} if type({value}) is Err else PREDICATE_NOT_BOOL")
        self.line(indent + 3, "break")
        self.line(indent, f"elif type({collection}) is Err:")
        self.line(indent + 1, f"{out} = {collection}")
        self.line(indent, "else:")  # a map, or a type error: the closure's way
        self.calls += 1
        self.line(indent + 1, f"{out} = {self.bind(node)}(V)")
        return out

    def logical(self, shape: Logical, indent: int) -> str:
        # `combine` in fastpath: the absorbing value wins, else the first error in order.
        # Any term's absorbing value decides, so the cheaper terms are evaluated first
        # (`event.category == 'shoes' && profile.affinities.shoes > 2.0` reads the
        # profile only for shoes); the first error is still taken in the written order.
        out, absorbing = self.temp(), repr(shape.absorbing)
        values: dict[int, str] = {}
        level = indent
        for index in sorted(range(len(shape.terms)), key=lambda i: _cost(shape.terms[i])):
            value = values[index] = self.emit(shape.terms[index], level)
            self.line(level, f"if {value} is {absorbing}:")
            self.line(level + 1, f"{out} = {absorbing}")
            self.line(level, "else:")
            level += 1
        keyword = "if"
        for index in range(len(shape.terms)):
            value = values[index]
            self.line(level, f"{keyword} type({value}) is not bool:")
            self.line(level + 1, f"{out} = {value} if type({value}) is Err else NOT_BOOL")
            keyword = "elif"
        self.line(level, "else:")
        self.line(level + 1, f"{out} = {not shape.absorbing!r}")
        return out

    def equal(self, shape: Equal, indent: int) -> str:
        a, b = self.emit(shape.left, indent), self.emit(shape.right, indent)
        out = self.temp()
        test = "!=" if shape.negated else "=="
        self.line(indent, f"if type({a}) is type({b}) and (type({a}) is str or type({a}) is int):")
        self.line(indent + 1, f"{out} = {a} {test} {b}")
        self.line(indent, "else:")
        self.line(indent + 1, f"{out} = EQ({a}, {b}, {shape.negated!r})")
        return out

    def compare(self, shape: Compare, indent: int) -> str:
        if shape.operator not in _OPERATORS:
            raise ValueError(f"not an ordering: {shape.operator!r}")
        a = self.emit(shape.left, indent)
        # an int's repr reads back exactly; a float (inf, nan, rounding) is bound by name
        number = repr(shape.number) if type(shape.number) is int else self.bind(shape.number)
        out = self.temp()
        self.line(indent, f"if type({a}) is int or type({a}) is float:")
        self.line(indent + 1, f"{out} = {a} {shape.operator} {number}")
        self.line(indent, f"elif type({a}) is Err:")  # a missing key: passed on, as `order` does
        self.line(indent + 1, f"{out} = {a}")
        self.line(indent, "else:")
        self.line(indent + 1, f"{out} = {self.bind(shape.order)}({a}, {number})")
        return out

    def one_of(self, shape: OneOf, indent: int) -> str:
        a = self.emit(shape.left, indent)
        out = self.temp()
        self.line(indent, f"if type({a}) is str:")
        self.line(indent + 1, f"{out} = {a} in {self.bind(shape.strings)}")
        self.line(indent, "else:")
        self.line(indent + 1, f"{out} = CONTAINS({a}, {self.bind(shape.options)})")
        return out

    def relation(self, shape: Relation, indent: int) -> str:
        if shape.function is contains_value:
            member = self.member(shape, indent)
            if member is not None:
                return member
        a, b = self.emit(shape.left, indent), self.emit(shape.right, indent)
        out = self.temp()
        memo, key = self.memo(shape, a, b)
        if memo is not None:  # each key's answer once per loop (see `memo`)
            self.line(indent, f"{out} = {memo}.get({key}, MISS) if type({key}) is str else MISS")
            self.line(indent, f"if {out} is MISS:")
            indent += 1
        self.apply(shape, a, b, out, indent)
        if memo is not None:
            self.line(indent, f"if type({key}) is str:")
            self.line(indent + 1, f"{memo}[{key}] = {out}")
        return out

    def memo(self, shape: Relation, a: str, b: str) -> tuple[str | None, str]:
        """In a loop, a dict for the answers of `x in m` or `m[x]` by string `x`, when `m`
        is read before the loop (``item.category in profile.affinities``): the profile's
        maps compute each value they give (a decayed affinity), and fifty items share a
        few categories. Both operators are pure, so an answer is the same each time."""
        held = set(self._hoisted_paths.values())
        if self.hoisted is None:
            return None, ""
        if shape.function is contains_value and b in held and a not in held:
            key = a
        elif shape.function is index_value and a in held and b not in held:
            key = b
        else:
            return None, ""
        memo = self.temp()
        self.hoisted.append(f"    {memo} = {{}}")
        return memo, key

    def apply(self, shape: Relation, a: str, b: str, out: str, indent: int) -> None:
        """`out = function(a, b)` of the relation, common cases inline."""
        if shape.function is contains_value:  # `contains_value`: a string in a map
            self.line(indent, f"if type({a}) is str and {_mapping(b)}:")
            self.line(indent + 1, f"{out} = {a} in {b}")
            self.line(indent, "else:")
            indent += 1
        if shape.function is index_value:  # `index_value`: a string key a map holds
            self.line(indent, f"if type({b}) is str and {_mapping(a)} and {b} in {a}:")
            self.line(indent + 1, f"{out} = {a}[{b}]")
            self.line(indent, "else:")
            indent += 1
        inline = _STRING_TESTS.get(shape.function)
        if inline is not None:  # `test` in fastpath on two strings, at once
            self.line(indent, f"if type({a}) is str and type({b}) is str:")
            self.line(indent + 1, f"{out} = {inline.format(a=a, b=b)}")
            self.line(indent, "else:")
            indent += 1
        self.line(indent, f"{out} = {self.bind(shape.function)}({a}, {b})")
