"""The CEL tokenizer relevo's analyses share (paths read, positions, the fast path)."""

from __future__ import annotations

import re
from typing import NamedTuple

TOKEN = re.compile(
    r"""
    (?P<ws>\s+|//[^\n]*)
  | (?P<string>[rRbB]{0,2}(?:\"\"\"(?:\\.|[^\\])*?\"\"\"|'''(?:\\.|[^\\])*?'''
        |"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'))
  | (?P<number>0[xX][0-9a-fA-F]+[uU]?|(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?[uU]?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>&&|\|\||==|!=|<=|>=|\.\?|[-+*/%!<>?:.,()\[\]{}])
    """,
    re.VERBOSE | re.DOTALL,
)


class Token(NamedTuple):  # a NamedTuple: tokenizing is on the rule-set load path
    kind: str
    text: str
    start: int
    end: int


def tokenize(source: str) -> list[Token]:
    # finditer skips characters no pattern matches; the parser accepted the text, so none are.
    return [
        Token(m.lastgroup or "op", m.group(), m.start(), m.end())
        for m in TOKEN.finditer(source)
        if m.lastgroup != "ws"
    ]
