"""The pure parts of the Prometheus plots and the bundle's view: window, frame, threshold, units,
the rule an alert's name picks, and the labels the HTML view shows instead of raw keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collectors.contract import Target
from collectors.plots import Series, Window, frame, plot_window, with_gaps
from collectors.prometheus_metrics import AlertRule, alert_expression, queries_for
from collectors.promql import Threshold, split_threshold, top_level, unit_of
from tasks.evidence import bundle as bundle_writer
from tasks.notes import bundle_view as bundle
from tasks.notes.voice import Voice
from triage.models import Priority
from triage.policy import Service, builtin
from triage.sla import deadlines

NOW = datetime(2026, 11, 29, 14, 0, tzinfo=UTC)


# --- the window -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alert_start", "start"),
    [
        (None, NOW - timedelta(hours=1)),  # no alert (a diagnosis): the last hour
        (NOW - timedelta(minutes=2), NOW - timedelta(hours=1)),  # a fresh alert: the last hour
        (NOW - timedelta(hours=2), NOW - timedelta(hours=2, minutes=30)),  # 30 min before it
        (NOW - timedelta(days=3), NOW - timedelta(hours=24)),  # a long incident: a day at most
        (NOW + timedelta(minutes=5), NOW - timedelta(hours=1)),  # a clock ahead: ignored
    ],
    ids=["diagnosis", "fresh-alert", "older-alert", "days-old", "future-start"],
)
def test_the_window_shows_context_before_the_alert_and_ends_now(alert_start, start) -> None:
    window = plot_window(NOW, alert_start)
    assert (window.start, window.end) == (start, NOW)


def test_the_step_keeps_a_long_window_to_a_few_hundred_points() -> None:
    assert plot_window(NOW).step_seconds == 15
    assert plot_window(NOW, NOW - timedelta(days=3)).step_seconds == 180  # 24 h: 480 points


def _series(count: int, every: float = 15.0, value: float = 1.0) -> Series:
    start = NOW.timestamp() - count * every
    return Series("job", tuple((start + n * every, value + n) for n in range(count)))


@pytest.mark.parametrize(
    ("series", "markers", "note"),
    [
        ([], False, "no data in 13:00-14:00 UTC"),
        ([Series("job", ())], False, "no data in 13:00-14:00 UTC"),
        ([_series(1)], True, "1 sample"),
        ([_series(2)], True, "2 samples"),
        ([_series(240)], False, ""),
        ([_series(240, value=n) for n in range(10)], False, "8 of 10 series"),
    ],
    ids=["empty", "empty-series", "one-sample", "two-samples", "normal", "too-many-series"],
)
def test_sparse_data_gets_markers_and_says_how_little_there_is(series, markers, note) -> None:
    shape = frame(series, plot_window(NOW))
    assert (shape.markers, shape.note) == (markers, note)


def test_the_window_does_not_shrink_to_sparse_data() -> None:
    # Two samples in the last 30 s are drawn in the hour around them, never stretched.
    assert plot_window(NOW) == plot_window(NOW)  # a pure function of now and the alert start
    shape = frame([_series(2)], plot_window(NOW))
    assert shape.samples == 2 and shape.low < 1 and shape.high > 2


def test_the_value_range_takes_the_threshold_in_and_never_collapses() -> None:
    flat = frame([_series(1, value=5.0)], plot_window(NOW))
    assert flat.low < 5.0 < flat.high
    below = frame([_series(3, value=1.0)], plot_window(NOW), threshold=30.0)
    assert below.low < 1.0 and below.high > 30.0
    nothing = frame([], plot_window(NOW), threshold=30.0)
    assert nothing.low < 30.0 < nothing.high


def test_a_gap_in_the_data_breaks_the_line() -> None:
    points = ((0.0, 1.0), (15.0, 2.0), (300.0, 3.0))
    times, values = with_gaps(points, step=15)
    assert len(times) == 4 and values[2] != values[2]  # NaN between 15 s and 300 s


def test_the_window_says_its_dates_when_it_spans_midnight() -> None:
    window = Window(
        datetime(2026, 11, 28, 23, 30, tzinfo=UTC), datetime(2026, 11, 29, 0, 30, tzinfo=UTC)
    )
    assert window.describe() == "28 Nov 23:30 - 29 Nov 00:30 UTC"


# --- the threshold ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "threshold"),
    [
        ("time() - eafix_last_tick_timestamp_seconds > 30",
         Threshold("time() - eafix_last_tick_timestamp_seconds", ">", 30.0)),
        ("histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m]))) > 5",
         Threshold("histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m])))", ">", 5.0)),
        ('up{job="eafix-risk-manager"} == 0', Threshold('up{job="eafix-risk-manager"}', "==", 0.0)),
        ("increase(x_total[15m]) >= 1.5e3", Threshold("increase(x_total[15m])", ">=", 1500.0)),
        ("0.5 > free_ratio", Threshold("free_ratio", "<", 0.5)),  # the number first: flipped
        ("x > bool 3", Threshold("x", ">", 3.0)),
        ("x < -2", Threshold("x", "<", -2.0)),
        ("x > 3 # page when above 3\n", Threshold("x", ">", 3.0)),
        ("up", None),  # no comparison
        ("a > 1 and b < 2", None),  # two conditions: no single line
        ("a > 1 unless b", None),
        ("a > b", None),  # against another series
        ("a > 2 * 3", None),  # arithmetic on the right: not a plain number
        ("sum(a > 5)", None),  # the comparison is inside, the result is not compared
    ],
)  # fmt: skip
def test_the_threshold_is_read_from_a_top_level_comparison(expression, threshold) -> None:
    assert split_threshold(expression) == threshold


@pytest.mark.parametrize(
    "expression",
    [
        'up{job="x > 99"}',  # a label value that looks like a threshold
        'up{job="a\\" > 7"}',  # an escaped quote does not end the value
        "up{job='x < 1'}",
        "up{job=`raw > 5`}",
        'rate(x{path="/a>1"}[5m])',
    ],
)
def test_a_hostile_label_value_or_comment_is_never_taken_for_a_threshold(expression) -> None:
    assert split_threshold(expression) is None
    assert split_threshold(f"{expression} # > 5") is None  # nor a comment
    assert split_threshold(f"{expression} == 0") == Threshold(expression, "==", 0.0)


def test_only_the_expressions_top_level_is_read() -> None:
    flat = top_level('sum(up{job="a > 1"}) > 2')
    assert len(flat) == len('sum(up{job="a > 1"}) > 2') and flat.split() == ["sum", ">", "2"]


@pytest.mark.parametrize(
    ("expression", "unit"),
    [
        ("up", "up (1) / down (0)"),
        ('sum(up{job=~"eafix-.*"})', "targets up"),
        ("time() - eafix_last_tick_timestamp_seconds", "seconds ago"),
        ("increase(eafix_reconciliation_failures_total[15m])", "reconciliation failures per 15m"),
        ("sum(rate(eafix_auth_failures_total[5m]))", "auth failures per second"),
        ("histogram_quantile(0.99, sum by (le) (rate(x_seconds_bucket[5m])))", "seconds"),
        ("process_resident_memory_bytes", "bytes"),
        ("some_gauge", ""),
    ],
)
def test_the_axis_says_the_unit_in_words(expression, unit) -> None:
    assert unit_of(expression) == unit


# --- which rule: the alert's name picks among Prometheus's rules, by exact name --------------

RULES = (
    AlertRule("MarketDataStale", "time() - eafix_last_tick_timestamp_seconds > 30"),
    AlertRule("RiskCheckErrors", "increase(eafix_risk_checks_failed_total[5m]) > 5"),
    AlertRule("Latency", "x_seconds > 5"),
    AlertRule("Latency", "x_seconds > 10"),
)
INGESTOR = Service("data-ingestor", "http://x/healthz", key_metrics=(
    "time() - eafix_last_tick_timestamp_seconds",))  # fmt: skip


def test_the_rule_named_by_the_alert_gives_the_expression_and_threshold() -> None:
    target = Target((INGESTOR,), alert_name="MarketDataStale", affected=("data-ingestor",))
    queries = queries_for(target, RULES)
    alert = queries[0]
    assert alert.expression == "time() - eafix_last_tick_timestamp_seconds"
    assert alert.threshold == Threshold(alert.expression, ">", 30.0)
    assert alert.threshold_source == "Prometheus rule MarketDataStale"
    # The catalog's key metric is the same expression: one plot, with the line.
    assert [q.expression for q in queries] == [alert.expression, "up"]


@pytest.mark.parametrize(
    "name",
    ["marketdatastale", "MarketDataStale ", "MarketDataStale|RiskCheckErrors", ".*", ""],
)
def test_an_alert_name_that_is_not_exactly_a_rule_picks_none(name: str) -> None:
    assert alert_expression(Target((), alert_name=name), RULES) == ("", "")


def test_of_two_rules_with_one_name_the_alerts_own_expression_decides() -> None:
    target = Target((), alert_name="Latency", expression="x_seconds>10")
    assert alert_expression(target, RULES) == ("x_seconds > 10", "Prometheus rule Latency")
    unknown = Target((), alert_name="Latency", expression="x_seconds > 99")
    assert alert_expression(unknown, RULES) == ("x_seconds > 99", "the alert's expression")
    assert alert_expression(Target((), alert_name="Latency"), RULES) == ("", "")


def test_without_rules_the_alerts_expression_still_gives_the_line() -> None:
    target = Target((), alert_name="X", expression='up{job="a > 9"} == 0')
    alert = queries_for(target)[0]
    assert alert.expression == 'up{job="a > 9"}' and alert.threshold.value == 0.0
    assert alert.threshold_source == "the alert's expression"


# --- the bundle view's labels -------------------------------------------------------------------


def test_every_deadline_key_has_a_human_label() -> None:
    policy = builtin()
    due = deadlines(Priority.P2, datetime(2026, 11, 28, 7, tzinfo=UTC), policy).to_dict()
    assert {"triggered_at", "notify_management", "lower_urgency"} <= set(due)  # the held case
    for key in due:
        assert key in bundle.LABELS, key
        assert "_" not in bundle.label(key) and bundle.label(key)[0].isupper()


def test_every_built_in_collector_and_status_has_a_label() -> None:
    from collectors.registry import BUILTIN

    for name in [*BUILTIN, "ok", "failed", "timeout", "skipped"]:
        assert name in bundle.LABELS, name


def test_the_view_links_the_archive_the_writer_packs() -> None:
    assert bundle.ARCHIVE == bundle_writer.ARCHIVE


def test_an_unknown_key_is_still_made_readable() -> None:
    assert bundle.label("queue_depth_max") == "Queue depth max"
    assert bundle.label("my-plugin") == "My plugin"


def test_the_view_says_moments_not_iso_strings_and_puts_failures_first() -> None:
    manifest = {
        "created_at": "2026-11-29T14:00:00+00:00",
        "title": "T",
        "classification": {"priority": "P1", "rule": "r", "reason": "why"},
        "deadlines": {"priority": "P1", "acknowledge": "2026-11-29T14:05:00+00:00",
                      "management": "notify"},
        "collectors": [
            {"name": "redis", "status": "ok", "summary": "PONG", "duration_seconds": 0.01,
             "files": [], "tables": {}},
            {"name": "docker", "status": "timeout", "summary": "slow", "duration_seconds": 12.5,
             "files": [], "tables": {}},
        ],
    }  # fmt: skip
    view = bundle.index_view(manifest, Path("/none"))
    assert [c["name"] for c in view["collectors"]] == ["docker", "redis"]
    assert view["deadlines"] == [
        {"label": "Acknowledge by", "at": datetime(2026, 11, 29, 14, 5, tzinfo=UTC), "text": "",
         "relative": "in 5m"},
        {"label": "Management hears by", "at": None, "text": "a note or responder request",
         "relative": ""},
    ]  # fmt: skip
    page = Voice.of(builtin()).bundle_index(manifest, Path("/none"))
    assert "Sun 29 Nov 2026 14:05 UTC" in page and "2026-11-29T14:05" not in page
    assert '<td class="took">12.5 s</td>' in page


def test_collector_output_cannot_inject_html_into_the_view() -> None:
    manifest = {
        "created_at": "2026-11-29T14:00:00+00:00",
        "title": "<img src=x onerror=alert(1)>",
        "classification": {"priority": "P1", "rule": "r", "reason": "<script>x</script>"},
        "collectors": [
            {"name": "<b>x</b>", "status": "failed", "summary": '"><script>y</script>',
             "duration_seconds": 0, "files": ['a"><script>z</script>.png'], "tables": {}},
        ],
    }  # fmt: skip
    page = Voice.of(builtin()).bundle_index(manifest, Path("/none"))
    assert "<script" not in page and "<img src=x" not in page and "<b>x" not in page
    assert "&lt;script&gt;y&lt;/script&gt;" in page
