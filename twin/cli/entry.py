"""The console-script entry point: imports the CLI inside the interrupt guard.

Importing the CLI takes a moment (pandas, pyarrow); a Ctrl-C then must not show a traceback either.
SIGTERM stops any command like Ctrl-C (cleaned up, one line, exit code 143); a command with its own
shutdown (a server) installs its own handler.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

from twin.errors import Terminated


def _quiet_interrupts(unraisable: sys.UnraisableHookArgs) -> None:
    """A Ctrl-C that lands while Python finalises a generator (a SimPy process) is reported as "ignored"
    with a traceback; the command itself goes on to its end or its own interrupt message, so stay silent."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        return
    sys.__unraisablehook__(unraisable)


def _terminate_as_interrupt() -> None:
    """Turn SIGTERM into ``Terminated`` in this process (a forked worker keeps the default: it just ends)."""
    owner = os.getpid()

    def terminate(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != owner:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise Terminated()

    signal.signal(signal.SIGTERM, terminate)


def main() -> None:
    sys.unraisablehook = _quiet_interrupts
    _terminate_as_interrupt()
    try:
        from twin.cli.app import main as cli_main
    except KeyboardInterrupt as err:
        sys.stderr.write("interrupted; nothing was written\n")
        sys.exit(143 if isinstance(err, Terminated) else 130)
    cli_main()
