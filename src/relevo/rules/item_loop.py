"""A decision's item actions (filter, boost, bury) as one generated loop over the items.

Why: a decision weighs about 50 candidate items, and the general loop in
`RuleSet.for_decision` made several Python calls per item and action before it reached
a condition's generated code (bind the item, `evaluate_bool`, `evaluate`, the condition),
and each condition read the profile's paths again for every item. Here the actions of
the rules that hold for this decision become one function, generated with
`relevo.rules.codegen`: the item is a local of the loop, paths of the other variables
(``profile.affinities``, ``context.device``) are read once before it, and each action's
effect is a few inline statements.

It does exactly what the general loop does, in the same order (which rule removes an
item first, the order of an item's rules, errors counted per rule, field and kind):
`tests/unit/rules/test_item_loop.py` compares the two on random rules and items. Only
conditions on the fast path are generated; a rule set with any other keeps the general
loop (as does a decision whose scope already went to the CEL library).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from relevo.rules.codegen import Writer
from relevo.rules.fastpath import Fast

ItemLoop = Callable[..., None]
"""``loop(V, items, removed, multipliers, buried, touched, failed)``: see `generate`."""


@dataclass(frozen=True, slots=True)
class ItemAction:
    """One filter, boost or bury of a rule, as the loop needs it."""

    rule_id: str
    kind: str  # "filter", "boost" or "bury"
    condition: Fast
    by: float = 1.0  # a boost's factor
    drop_on_error: bool = False  # a filter's ``on_error: drop``


def generate(actions: Sequence[ItemAction]) -> ItemLoop:
    """The loop applying `actions`, in order, to each item with an ``item_id``.

    ``loop(V, items, removed, multipliers, buried, touched, failed)`` binds ``V['item']``
    to each item in turn (closures the code calls read it there), fills the four
    collections as the general loop does, and calls ``failed(i, value)`` when action
    ``i``'s condition gives an error or a value that is not a bool.
    """
    writer = Writer()
    writer.given["item"] = "item"
    writer.hoisted = []
    writer.body = 2
    writer.line(1, "for item in items:")
    writer.line(2, "item_id = item.get('item_id')")
    writer.line(2, "if item_id is None:")
    writer.line(3, "continue")
    writer.line(2, "if type(item_id) is not str:")
    writer.line(3, "item_id = str(item_id)")
    writer.line(2, "V['item'] = item")
    for index, action in enumerate(actions):
        value = writer.emit(action.condition, 2)
        rule = writer.bind(action.rule_id)
        if action.kind == "filter":
            writer.line(2, f"if {value} is False:")  # filtered out: no further actions
            writer.line(3, f"removed[item_id] = {rule}")
            writer.line(3, f"touched.setdefault(item_id, []).append({rule})")
            writer.line(3, "continue")
            writer.line(2, f"if {value} is not True:")
            writer.line(3, f"failed({index}, {value})")
            if action.drop_on_error:
                writer.line(3, f"removed[item_id] = {rule}")
                writer.line(3, "continue")
            continue
        writer.line(2, f"if {value} is True:")
        if action.kind == "boost":
            by = writer.bind(action.by)
            writer.line(3, f"multipliers[item_id] = multipliers.get(item_id, 1.0) * {by}")
        else:
            writer.line(3, "buried.add(item_id)")
        writer.line(3, f"touched.setdefault(item_id, []).append({rule})")
        writer.line(2, f"elif {value} is not False:")
        writer.line(3, f"failed({index}, {value})")
    parameters = "V, items, removed, multipliers, buried, touched, failed"
    loop: ItemLoop = writer.define("loop", f"<item loop of {len(actions)} actions>", parameters)
    return loop
