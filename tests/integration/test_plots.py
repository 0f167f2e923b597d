"""The Prometheus plots and the bundle's HTML view against a real Prometheus: a young server with
two or three samples, alerting rules with thresholds, a metric it has never seen."""

from __future__ import annotations

import html
import json
import re
import shutil
import socket
import struct
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest
import requests
import yaml
from click.testing import CliRunner

from collectors import prometheus_metrics
from collectors.contract import CollectorContext, Status, Target
from collectors.plots import Series, Window, draw
from collectors.promql import Threshold
from tasks.cli import main
from tasks.evidence import bundle
from tasks.notes.voice import Voice
from tests.support import wait_for
from triage.models import Priority
from triage.policy import Service, builtin
from triage.sla import deadlines

SCHEMA = json.loads((Path(bundle.__file__).parent / "bundle_manifest.schema.json").read_text())
RULES = {
    "groups": [
        {
            "name": "plots",
            "rules": [
                # Never fires (the server is up); its threshold is what the plot draws.
                {"alert": "PlotsSelfDown", "expr": 'up{job="self"} < 0.5'},
                {"alert": "PlotsTooManySeries", "expr": "prometheus_tsdb_head_series > 100000"},
            ],
        }
    ]
}
SELF = Service("self", "http://127.0.0.1/healthz", key_metrics=("prometheus_tsdb_head_series",))
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")
RAW_KEYS = ("triggered_at", "notify_management", "active_from", "next_update", "duration_seconds")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Run Prometheus scraping itself every second, with the rules above; yield its URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("Prometheus is not installed (Debian package prometheus); `make test` does")
    folder = tmp_path_factory.mktemp("prometheus")
    address = f"127.0.0.1:{free_port()}"
    (folder / "rules.yml").write_text(yaml.safe_dump(RULES))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(folder / "rules.yml")],
        "scrape_configs": [{"job_name": "self", "static_configs": [{"targets": [address]}]}],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    with (folder / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(
            [binary, f"--config.file={folder / 'prometheus.yml'}",
             f"--web.listen-address={address}", f"--storage.tsdb.path={folder / 'data'}"],
            stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    url = f"http://{address}"
    try:

        def scraped_twice() -> bool:
            try:
                answer = requests.get(
                    f"{url}/api/v1/query", params={"query": 'count_over_time(up{job="self"}[1m])'},
                    timeout=2,
                ).json()  # fmt: skip
            except requests.RequestException:
                return False
            result = answer.get("data", {}).get("result", [])
            return bool(result) and float(result[0]["value"][1]) >= 2

        wait_for(scraped_twice, timeout=120, what="Prometheus to scrape itself twice")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    return struct.unpack(">II", data[16:24])


def _visible_text(page: str) -> str:
    page = re.sub(r"<style>.*?</style>", "", page, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _collect(prometheus: str, started: datetime):
    target = Target((SELF,), alert_name="PlotsSelfDown", affected=("self",), started_at=started)
    ctx = CollectorContext(redis_url="", timeout_seconds=5, prometheus_url=prometheus)
    return prometheus_metrics.collect(target, ctx)


def test_the_plot_draws_the_rules_threshold_in_a_window_with_context(
    prometheus: str, tmp_path: Path
) -> None:
    started = datetime.now(UTC) - timedelta(minutes=3)
    evidence = _collect(prometheus, started)
    assert evidence.status is Status.OK, evidence.summary
    plots = {p["title"]: p for p in evidence.tables["plots"]}
    alert = plots["PlotsSelfDown"]  # the alert's rule, titled by the alert's name
    # The rule's comparison is drawn as a line; its left side is what is queried and plotted.
    assert alert["expression"] == 'up{job="self"}'
    assert alert["threshold"] == {
        "value": 0.5, "op": "<", "label": "alert when < 0.5",
        "source": "Prometheus rule PlotsSelfDown",
    }  # fmt: skip
    start, end = (datetime.fromisoformat(alert[k]) for k in ("window_start", "window_end"))
    assert end - start >= timedelta(hours=1) and start <= started - timedelta(minutes=30)
    # A server seconds old has a handful of samples: drawn, and said.
    samples = alert["samples"]
    assert 1 <= samples < 30 and alert["note"] == f"{samples} sample{'s' * (samples > 1)}"
    # A metric Prometheus has never seen still gets a frame that says so.
    (unseen,) = [p for t, p in plots.items() if t.startswith("self ")]
    assert unseen["samples"] > 0  # prometheus_tsdb_head_series: Prometheus's own
    for plot in plots.values():
        assert _png_size(evidence.files[plot["file"]]) == (900, 360)


def test_the_same_data_draws_the_same_png_bytes(prometheus: str) -> None:
    evidence = _collect(prometheus, datetime.now(UTC) - timedelta(minutes=1))
    plot = evidence.tables["plots"][0]
    saved = json.loads(evidence.files[plot["file"].replace(".png", ".json")])
    series = [
        Series(s["metric"].get("job") or prometheus_metrics._series_name(s["metric"]),
               tuple((float(t), float(v)) for t, v in s["values"]))
        for s in saved["range"]
    ]  # fmt: skip
    window = Window(*(datetime.fromisoformat(plot[k]) for k in ("window_start", "window_end")))
    line = plot["threshold"]
    threshold = Threshold(plot["expression"], line["op"], line["value"])
    again = draw(
        plot["title"], plot["expression"], plot["unit"], series, window, threshold,
        datetime.fromisoformat(plot["alert_start"]),
    )  # fmt: skip
    assert again == evidence.files[plot["file"]]  # redrawn from the bundle: byte for byte


def test_no_data_is_said_on_the_image(prometheus: str) -> None:
    target = Target(
        (Service("ghost", "http://x/healthz", key_metrics=("plots_never_seen_total",)),),
        affected=("ghost",),
    )
    ctx = CollectorContext(redis_url="", timeout_seconds=5, prometheus_url=prometheus)
    evidence = prometheus_metrics.collect(target, ctx)
    ghost = next(p for p in evidence.tables["plots"] if p["expression"] == "plots_never_seen_total")
    assert ghost["samples"] == 0 and ghost["note"].startswith("no data in ")
    assert _png_size(evidence.files[ghost["file"]]) == (900, 360)


def test_the_bundle_view_has_labels_readable_times_and_captioned_plots(
    prometheus: str, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    started = now - timedelta(minutes=2)
    evidence = _collect(prometheus, started)
    folder = tmp_path / "b-plots-r1"
    stored = bundle.store_files(folder, evidence.files, lambda t: t)
    entry = bundle.manifest_entry(evidence, stored, lambda t: t)
    policy = builtin()
    header = {
        "bundle_id": folder.name,
        "delivery_id": "d-plots",
        "run": 1,
        "title": "PlotsSelfDown",
        "incident": {"id": "PPLOTS", "incident_key": "k", "label": "PPLOTS"},
        "classification": {"priority": "P1", "rule": "sample", "reason": "a test"},
        "deadlines": deadlines(Priority.P1, started, policy).to_dict(),
    }
    manifest = bundle.write_manifest(folder, header, [entry], now, Voice.of(policy).bundle_index)
    jsonschema.validate(
        manifest, SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    assert entry["plots"] and "plots" not in entry["tables"]  # described once, for captions
    page = (folder / "index.html").read_text()
    text = _visible_text(page)
    assert not [k for k in RAW_KEYS if k in text], text
    assert not ISO.search(text), ISO.search(text)
    assert "Alert started" in text and "Tell management by" in text and "Incident PPLOTS" in text
    assert "red line: alert when < 0.5 (Prometheus rule PlotsSelfDown)" in text
    assert '<img src="./prometheus/q0.png" alt="PlotsSelfDown" width="900" height="360">' in page
    assert "<script" not in page and "http://" not in page and "https://" not in page


def test_a_diagnose_bundle_says_who_diagnosed_what(
    prometheus: str, responder_env: dict[str, str], monkeypatch, tmp_path: Path
) -> None:
    for name, value in responder_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RESPONDER_BUNDLE_DIR", str(tmp_path))
    monkeypatch.setenv("RESPONDER_PROMETHEUS_URL", prometheus)
    monkeypatch.setenv("USER", "dana")
    monkeypatch.setenv("LOGNAME", "dana")
    result = CliRunner().invoke(main, ["diagnose", "risk-manager", "--priority", "P2", "--json"])
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.output)
    assert manifest["diagnosis"] == {
        "service": "risk-manager", "by": "dana", "via": "responder diagnose (CLI)"
    }  # fmt: skip
    text = _visible_text((Path(manifest["path"]) / "index.html").read_text())
    assert re.search(r"Diagnosis of risk-manager run by dana through responder diagnose \(CLI\) "
                     r"at \w{3} \d\d \w{3} \d{4} \d\d:\d\d UTC", text), text  # fmt: skip
    assert "Incident ?" not in text and "delivery ?" not in text
    summary = (Path(manifest["path"]) / "summary.md").read_text()
    assert "- Diagnosis of risk-manager run by dana through responder diagnose (CLI) at " in summary
    assert "Delivery: ?" not in summary
    assert not ISO.search(text)
