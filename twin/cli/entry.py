"""The console-script entry point: imports the CLI inside the interrupt guard.

Importing the CLI takes a moment (pandas, pyarrow); a Ctrl-C then must not show a traceback either.
"""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from twin.cli.app import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("interrupted; nothing was written\n")
        sys.exit(130)
    cli_main()
