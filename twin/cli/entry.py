"""The console-script entry point: imports the CLI inside the interrupt guard.

Importing the CLI takes a moment (pandas, pyarrow); a Ctrl-C then must not show a traceback either.
"""

from __future__ import annotations

import sys


def _quiet_interrupts(unraisable: sys.UnraisableHookArgs) -> None:
    """A Ctrl-C that lands while Python finalises a generator (a SimPy process) is reported as "ignored"
    with a traceback; the command itself goes on to its end or its own interrupt message, so stay silent."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        return
    sys.__unraisablehook__(unraisable)


def main() -> None:
    sys.unraisablehook = _quiet_interrupts
    try:
        from twin.cli.app import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("interrupted; nothing was written\n")
        sys.exit(130)
    cli_main()
