"""The `git` collector: recent deployments, the commits of the last 24 h in the configured repo.

Each commit of the deploy repository is a deploy; its full sha and its first parent's (the
revision before it) are what a rollback proposal returns to (triage.actions.deploys_of).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from collectors.contract import CollectorContext, Evidence, Status, Target

NAME = "git"
SINCE = "24 hours ago"
FIELD_SEPARATOR = "\x1f"
FIELDS = ("commit", "date", "author", "revision", "parents", "subject")


def collect(target: Target, ctx: CollectorContext) -> Evidence:
    """List commits of the last 24 hours; the repository comes from settings, never an alert."""
    if not ctx.git_repo:
        return Evidence(NAME, Status.SKIPPED, "no repository configured (RESPONDER_DEPLOY_REPO)")
    if not (Path(ctx.git_repo) / ".git").exists() and not (Path(ctx.git_repo) / "HEAD").is_file():
        return Evidence(NAME, Status.FAILED, f"not a git repository: {ctx.git_repo}")
    # An argv list (no shell) with fixed arguments; `--` ends the options before no paths.
    command = [
        "git", "-C", ctx.git_repo, "log", f"--since={SINCE}", "--max-count=50",
        f"--pretty=format:{FIELD_SEPARATOR.join(('%h', '%cI', '%an', '%H', '%P', '%s'))}", "--",
    ]  # fmt: skip
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=ctx.timeout_seconds, check=False
        )
    except subprocess.TimeoutExpired:
        return Evidence(NAME, Status.TIMEOUT, f"git log ran past {ctx.timeout_seconds:g}s")
    except FileNotFoundError:
        return Evidence(NAME, Status.SKIPPED, "git is not installed")
    if done.returncode != 0:
        return Evidence(
            NAME, Status.FAILED, ctx.redact(f"git log failed: {done.stderr.strip()[:200]}")
        )
    commits = [commit_row(line) for line in done.stdout.splitlines() if line]
    latest = f"; latest {commits[0]['commit']} {commits[0]['subject'][:60]!r}" if commits else ""
    return Evidence(
        collector=NAME,
        status=Status.OK,
        summary=f"{len(commits)} commits in the last 24 h{latest}",
        tables={"commits": commits},
        files={"git/recent-commits.json": json.dumps(commits, indent=2)},
    )


def commit_row(line: str) -> dict[str, str]:
    """Return one `git log` line as a row: the subject keeps any separator it holds."""
    values = line.split(FIELD_SEPARATOR, len(FIELDS) - 1)
    row = dict(zip(FIELDS, values, strict=False))
    # The first parent is the revision the deploy replaced: where a rollback returns to.
    row["parent"] = (row.pop("parents", "").split() or [""])[0]
    return row
