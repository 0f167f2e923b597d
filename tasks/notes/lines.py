"""One-line texts: the lines the responder writes into an incident's timeline, the answers an
approval gives, what a bundle's manifest adds to a collector's summary, and the policy's own
messages (responder requests) filled in.

Rendered with Jinja2 like every text the responder writes, from `templates/_timeline.txt.j2`,
`templates/_approval_answers.txt.j2` and `templates/_bundle_lines.txt.j2` (one macro per
line). Not overridable by a policy: the incident page and `responder action show` recognise
these lines by their words. Light on purpose (Jinja2 only), so that the receiver's approval
path uses it without loading `voice`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

TEMPLATES = Path(__file__).resolve().parent / "templates"


@cache
def _lines() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,  # a misspelt fact fails, it is never blank
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # plain text: a timeline entry is escaped where it is shown
        auto_reload=False,  # compiled once per process, as `voice` does
    )
    env.filters["pyrepr"] = repr  # an id someone typed, shown quoted as they typed it
    return env


def as_named(person: str) -> str:
    """Return a person as the responder names them: as they are."""
    return person


@cache
def _policy_texts() -> SandboxedEnvironment:
    # The policy is an operator's file: its templates render sandboxed, a missing name blank.
    return SandboxedEnvironment(autoescape=False, keep_trailing_newline=True)


def _macro(template: str, name: str, facts: dict[str, Any]) -> str:
    module = _lines().get_template(template).module
    return str(getattr(module, name)(**facts))


def timeline(line: str, /, **facts: Any) -> str:
    """Return the incident timeline's `line` (a macro of _timeline.txt.j2), filled."""
    return _macro("_timeline.txt.j2", line, facts)


def bundle_line(line: str, /, **facts: Any) -> str:
    """Return what a bundle's manifest adds to a collector's summary (a macro of
    _bundle_lines.txt.j2), filled."""
    return _macro("_bundle_lines.txt.j2", line, facts)


def approval_answer(answer: str, /, name: Callable[[str], str] = as_named, **facts: Any) -> str:
    """Return an approval's `answer` (a macro of _approval_answers.txt.j2), filled; `name`
    shows each person it names (Slack: as a mention)."""
    return _macro("_approval_answers.txt.j2", answer, {**facts, "name": name})


def policy_message(text: str, /, **facts: str) -> str:
    """Return a policy's message with its placeholders (`{priority}` or `{{ priority }}`)
    filled from `facts`; any other text stays as written."""
    if "{{" in text or "{%" in text:
        source = text  # written in Jinja's syntax: the author's template, as it is
    else:
        # The placeholders policies have always been documented with, `{priority}`, become
        # Jinja's `{{ priority }}`; any other brace (`{impact}` where there is none, a stray
        # `{#`) stays text, as it always did.
        names = "|".join(re.escape(name) for name in facts)
        parts = re.split(rf"(?<!\{{)\{{({names})\}}(?!\}})", text)
        source = "".join(
            "{{ " + part + " }}" if i % 2 else part.replace("{#", "{{ '{#' }}")
            for i, part in enumerate(parts)
        )
    return _policy_texts().from_string(source).render(**facts)


def policy_message_problem(text: str) -> str | None:
    """Return why a policy's message cannot be rendered (Jinja syntax), or None."""
    if "{{" not in text and "{%" not in text:
        return None  # the `{priority}` style: every other brace stays text, nothing to break
    try:
        _policy_texts().parse(text)
    except jinja2.TemplateSyntaxError as exc:
        return f"not a valid template: {exc.message} (line {exc.lineno} of the message)"
    return None
