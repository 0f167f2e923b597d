"""What the CLI prints goes through `say`: text from outside never drives the terminal.

Alert names, incident titles, labels and delivery fields come from Alertmanager and PagerDuty;
an ESC sequence in one (`\\x1b[2J`, `\\x1b]0;title\\x07`) would clear the screen or retitle the
window of whoever runs `responder deliveries`. Every control character is shown escaped
instead, as `\\u001b`: readable, and valid inside the JSON that --json prints.
"""

from __future__ import annotations

import re

import click

# C0 controls but tab and newline (the CLI's own layout), DEL, C1 controls (0x9b is a CSI on
# its own), and the bidirectional overrides that reorder what a line appears to say.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """Return text with every terminal control character shown escaped (`\\u001b`)."""
    return _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def say(message: object = "", err: bool = False, nl: bool = True) -> None:
    """Print a line of the CLI's output (to stderr with `err`), its controls escaped."""
    click.echo(printable(str(message)), err=err, nl=nl)
