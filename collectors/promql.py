"""What a plot needs to know of a PromQL expression: its threshold and the unit of its values.

Pure functions over the expression text. An expression is only ever read here, never built:
what reaches Prometheus is an expression that came from Prometheus's own rules or the policy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")
_FLIPPED = {">": "<", "<": ">", ">=": "<=", "<=": ">=", "==": "==", "!=": "!="}
# Binary operators that bind more loosely than a comparison: an expression with one of them at
# its top level (`a > 1 and b < 2`) has no single threshold.
_LOOSER = re.compile(r"(?<![\w:])(and|or|unless)(?![\w:])", re.IGNORECASE)
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?", re.IGNORECASE)
_OPENERS = {"(": ")", "{": "}", "[": "]"}
# A name: from the first name character of a run of word characters to the run's end, not a
# function call. Tried once per run (the lookbehind), not from each of its characters: the
# expression can be the alert's own (its generatorURL), so a long run must not cost its square.
_NAMES = re.compile(r"(?<![\w:])(?>[\w:]*?([A-Za-z_:][\w:]*+))(?!\()")
_CLOSING = {"{": "}", '"': '"', "'": "'"}
_INCREASE = "increase("
_WINDOW = re.compile(r"\[(\w++)\]")


@dataclass(frozen=True)
class Threshold:
    """An alert rule read as `metric <op> value`: what to plot and where to draw the line."""

    metric: str  # the expression whose values are compared
    op: str  # >, <, >=, <=, ==, !=, from the metric's side
    value: float

    def describe(self) -> str:
        """Return the line's label: `alert when > 30`."""
        return f"alert when {self.op} {self.value:g}"


def top_level(expression: str) -> str:
    """Return `expression` with comments dropped and everything nested or quoted blanked out.

    The result has the same length, so positions found in it hold in the original. Label values,
    strings, selectors, ranges and parenthesised parts become spaces: nothing inside them (a
    hostile `job="x > 99"`) can look like an operator of the expression itself.
    """
    return _scan(expression)[0]


def _scan(expression: str) -> tuple[str, str]:
    """Return (the top level only, the expression without its comments), both of equal length."""
    flat, clean, closing, quote = [], [], [], ""
    index = 0
    while index < len(expression):
        char = expression[index]
        if quote:
            if char == "\\" and quote != "`":
                pair = expression[index : index + 2]
                flat.append(" " * len(pair))
                clean.append(pair)
                index += 2
                continue
            if char == quote:
                quote = ""
            flat.append(" ")
        elif char in "\"'`":
            quote = char
            flat.append(" ")
        elif char == "#":
            end = expression.find("\n", index)
            end = len(expression) if end == -1 else end
            flat.append(" " * (end - index))
            clean.append(" " * (end - index))
            index = end
            continue
        elif char in _OPENERS:
            closing.append(_OPENERS[char])
            flat.append(" ")
        elif closing and char == closing[-1]:
            closing.pop()
            flat.append(" ")
        else:
            flat.append(" " if closing else char)
        clean.append(char)
        index += 1
    return "".join(flat), "".join(clean)


def split_threshold(expression: str) -> Threshold | None:
    """Return the threshold of an alert expression `metric <op> number` (or `number <op> metric`).

    None when there is no single comparison with a plain number at the expression's top level:
    `a > 1 and b < 2`, `a > b`, `a > 2 * 3`, a comparison only inside parentheses or a label.
    """
    flat, expression = _scan(expression)
    if _LOOSER.search(flat):
        return None
    found = []
    index = 0
    while index < len(flat):
        for op in _COMPARISONS:
            if flat.startswith(op, index):
                # `=~`, `!~` live inside selectors, already blanked; `=` alone is not PromQL here.
                found.append((index, op))
                index += len(op)
                break
        else:
            index += 1
    if len(found) != 1:
        return None
    at, op = found[0]
    left, right = expression[:at].strip(), expression[at + len(op) :].strip()
    right = re.sub(r"^bool(?![\w:])", "", right).strip()  # `x > bool 3` still compares to 3
    if _is_number(right) and left and not _is_number(left):
        return Threshold(left, op, float(right))
    if _is_number(left) and right and not _is_number(right):
        return Threshold(right, _FLIPPED[op], float(left))
    return None


def _without_selectors(text: str) -> str:
    """Return text without `{...}` selectors and quoted strings, each to its first closing.

    The scan once made by `re.sub(r"\\{[^}]*\\}|\"[^\"]*\"|'[^']*'", "", text)`, without trying
    again from every opening when no closing follows (no closing after one: none after later).
    """
    kept, at, index, unclosed = [], 0, 0, set()
    while index < len(text):
        closing = _CLOSING.get(text[index])
        if closing is None or closing in unclosed:
            index += 1
            continue
        end = text.find(closing, index + 1)
        if end == -1:
            unclosed.add(closing)
            index += 1
            continue
        kept.append(text[at:index])
        at = index = end + 1
    return "".join(kept) + text[at:]


def _increase_window(bare: str) -> str | None:
    """Return the range of the first `increase(...[5m]` whose first `[` opens a word range.

    As `re.search(r"increase\\([^\\[]*\\[(\\w+)\\]", bare)`, but every `increase(` before the
    same `[` shares its answer, so each `[` is tried once.
    """
    at = bare.find(_INCREASE)
    while at != -1:
        bracket = bare.find("[", at + len(_INCREASE))
        if bracket == -1:
            return None
        if window := _WINDOW.match(bare, bracket):
            return window.group(1)
        at = bare.find(_INCREASE, bracket + 1)
    return None


def _is_number(text: str) -> bool:
    return _NUMBER.fullmatch(text) is not None


def unit_of(expression: str) -> str:
    """Return a human axis label for an expression's values, from the names in it ("" unknown)."""
    text = re.sub(r"\s+", "", expression)
    bare = _without_selectors(text)  # no label matchers or strings
    names = _NAMES.findall(bare)
    metric = next((n for n in names if "_" in n and n not in _KEYWORDS), "")
    if metric == "" and "up" in names:
        return "targets up" if re.match(r"(sum|count)\(", bare) else "up (1) / down (0)"
    if metric.endswith("_timestamp_seconds") and "time()-" in bare:
        return "seconds ago"
    if "histogram_quantile(" in bare and metric.endswith("_seconds_bucket"):
        return "seconds"
    counted = _words(metric.removesuffix("_total"))
    if window := _increase_window(bare):
        return f"{counted} per {window}"
    if re.search(r"(?<![\w:])i?rate\(", bare):
        return f"{counted} per second"
    for suffix, unit in (("_seconds", "seconds"), ("_bytes", "bytes"), ("_ratio", "ratio")):
        if metric.endswith(suffix):
            return unit
    return ""


_KEYWORDS = {"group_left", "group_right"}


def _words(metric: str) -> str:
    return metric.removeprefix("eafix_").replace("_", " ") or "events"
