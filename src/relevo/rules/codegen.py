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

from collections.abc import Callable, Mapping
from typing import Any

from relevo.features.profile import ProfileView, direct_reader
from relevo.rules.fastpath import (
    _IS_MAPPING,
    NOT_BOOL,
    SHAPES,
    Call,
    Compare,
    Constant,
    Equal,
    Err,
    Fast,
    Logical,
    OneOf,
    Path,
    Relation,
    _step,
    compile_fast,
    contains_value,
    equal_values,
)

MAX_DEPTH = 40
"""Nesting of `&&`/`||` terms beyond this stays a closure call (Python limits indentation)."""

_OPERATORS = {"<", "<=", ">", ">="}


def compile_condition(source: str, roots: frozenset[str]) -> Fast | None:
    """`source` as a generated function, or None outside the fast subset."""
    node = compile_fast(source, roots)
    return None if node is None else generate(node, source)


def generate(node: Fast, source: str = "") -> Fast:
    """A function computing what the closure `node` computes, with its common nodes inlined."""
    writer = _Writer()
    result = writer.emit(node, 1)
    writer.line(1, f"return {result}")
    generated: Fast = writer.define("condition", f"<condition {source[:60]!r}>")
    shape = SHAPES.get(node)
    if shape is not None:  # a bucket's code can inline it again (`generate_bucket`)
        SHAPES[generated] = shape
    return generated


def generate_bucket(conditions: list[Fast | None]) -> Callable[[Mapping[str, Any]], list[Any]]:
    """One function evaluating a bucket's conditions in order (None: no condition).

    It returns ``(index, value)`` for each condition that is not ``False`` (true ones and
    errors), in order: an event's rules then cost one call, not one per rule.
    """
    writer = _Writer()
    writer.line(1, "out = []")
    for index, node in enumerate(conditions):
        if node is None:
            writer.line(1, f"out.append(({index}, True))")
            continue
        result = writer.emit(node, 1)
        writer.line(1, f"if {result} is not False:")
        writer.line(2, f"out.append(({index}, {result}))")
    writer.line(1, "return out")
    bucket: Callable[[Mapping[str, Any]], list[Any]] = writer.define(
        "bucket", f"<bucket of {len(conditions)} rules>"
    )
    return bucket


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: dict[str, Any] = {
            "Err": Err,
            "ISMAP": _IS_MAPPING,
            "STEP": _step,
            "NOT_BOOL": NOT_BOOL,
            "EQ": equal_values,
            "CONTAINS": contains_value,
            "PROFILE_VIEW": ProfileView,
        }
        self._count = 0
        self._roots: dict[str, tuple[str, Err]] = {}

    def define(self, name: str, filename: str) -> Any:
        """The function `name(V)` of the lines written, the variables read at its top."""
        roots = [
            f"    {variable} = V.get({root!r}, {self.bind(unbound)})"
            for root, (variable, unbound) in self._roots.items()
        ]
        code = f"def {name}(V):\n" + "\n".join(roots + self.lines) + "\n"
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
        if isinstance(shape, Relation):
            return self.relation(shape, indent)
        if isinstance(shape, Call):
            argument = self.emit(shape.argument, indent)
            out = self.temp()
            self.line(indent, f"{out} = {self.bind(shape.function)}({argument})")
            return out
        return self.call(node, indent)

    def call(self, node: Fast, indent: int) -> str:
        out = self.temp()
        self.line(indent, f"{out} = {self.bind(node)}(V)")
        return out

    def path(self, shape: Path, node: Fast, indent: int) -> str:
        # `walk` in fastpath: a missing key is an Err, which later steps pass on unchanged
        out = self.temp()
        variable = self._roots.setdefault(shape.root, (f"r{len(self._roots)}", shape.unbound))[0]
        self.line(indent, f"{out} = {variable}")
        reader = None
        if shape.root == "profile":
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

    def logical(self, shape: Logical, indent: int) -> str:
        # `combine` in fastpath: in order, the absorbing value wins, else the first error
        out, error = self.temp(), self.temp()
        absorbing = repr(shape.absorbing)
        self.line(indent, f"{error} = None")
        level = indent
        for term in shape.terms:
            value = self.emit(term, level)
            self.line(level, f"if {value} is {absorbing}:")
            self.line(level + 1, f"{out} = {absorbing}")
            self.line(level, "else:")
            level += 1
            self.line(level, f"if type({value}) is not bool and {error} is None:")
            self.line(level + 1, f"{error} = {value} if type({value}) is Err else NOT_BOOL")
        self.line(level, f"{out} = {error} if {error} is not None else {not shape.absorbing!r}")
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
        a, b = self.emit(shape.left, indent), self.emit(shape.right, indent)
        out = self.temp()
        self.line(indent, f"{out} = {self.bind(shape.function)}({a}, {b})")
        return out
