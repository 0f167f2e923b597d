"""JSON log lines: time, level, logger, message; a failure's type and place, never its text."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from tasks.log_format import JSON, TEXT, JsonLines, log_format_of
from tasks.settings import SettingsError, settings_from_env


def record(message: str, *args: object, exc: bool = False) -> logging.LogRecord:
    """Return a record as a logger makes it, with the exception being handled if `exc`."""
    exc_info = sys.exc_info() if exc else None
    return logging.LogRecord("tasks.pipeline", logging.ERROR, __file__, 1, message, args, exc_info)


def test_a_line_holds_the_time_the_level_the_logger_and_the_message() -> None:
    line = JsonLines().format(record("delivery %s failed: %s", "d-1", "timeout"))
    entry = json.loads(line)
    assert entry.keys() == {"time", "level", "logger", "message"}
    assert entry["level"] == "ERROR" and entry["logger"] == "tasks.pipeline"
    assert entry["message"] == "delivery d-1 failed: timeout"
    assert entry["time"].endswith("+00:00")


def test_a_message_of_many_lines_stays_one_line() -> None:
    line = JsonLines().format(record("first\nsecond\r\nthird"))
    assert "\n" not in line
    assert json.loads(line)["message"] == "first\nsecond\r\nthird"


def test_a_failure_gives_its_type_and_place_never_its_text() -> None:
    try:
        raise ValueError('body: {"labels": {"password": "hunter2"}}')
    except ValueError:
        line = JsonLines().format(record("could not parse", exc=True))
    entry = json.loads(line)
    assert entry["exception"] == "builtins.ValueError"
    assert any("test_log_format.py" in frame for frame in entry["at"])
    assert "hunter2" not in line and "labels" not in line


@pytest.mark.parametrize(
    ("value", "format_"),
    [("json", JSON), ("text", TEXT), ("", TEXT), (None, TEXT), ("JSON ", TEXT)],
)
def test_only_json_asks_for_json_lines(value: str | None, format_: str) -> None:
    environ = {} if value is None else {"RESPONDER_LOG_FORMAT": value}
    assert log_format_of(environ) == format_


def test_the_log_format_setting_takes_text_or_json_and_refuses_others_naming_it() -> None:
    assert settings_from_env({}).log_format == "text"
    assert settings_from_env({"RESPONDER_LOG_FORMAT": "json"}).log_format == "json"
    with pytest.raises(SettingsError) as refused:
        settings_from_env({"RESPONDER_LOG_FORMAT": "xml"})
    assert str(refused.value) == "RESPONDER_LOG_FORMAT: expected one of text, json, got 'xml'"
