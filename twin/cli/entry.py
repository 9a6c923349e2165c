"""The console-script entry point: installs the signal handlers, then imports the CLI inside the interrupt guard.

Importing the CLI takes a moment (pandas, pyarrow); a Ctrl-C then must not show a traceback either.
SIGTERM (what a service manager sends) is handled like Ctrl-C by every command: what a command had is
written whole or not at all, and it says which.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from types import FrameType

from twin.errors import Terminated

RECEIVED: list[str] = []  # the signals received, by name (for servers whose library swallows the interrupt)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    RECEIVED.append("SIGINT")
    raise KeyboardInterrupt()


def install_signal_handlers() -> None:
    """Ctrl-C (SIGINT) and SIGTERM raise ``KeyboardInterrupt`` (SIGTERM: ``Terminated``) in this process.

    SIGINT gets its handler even when it was inherited as ignored (a background job of a shell, such as a test
    suite run with ``&``): the CLI decides what Ctrl-C does, not how it happened to be started. A forked
    worker keeps SIGTERM's default: it just ends.
    """
    owner = os.getpid()

    def terminate(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != owner:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        RECEIVED.append("SIGTERM")
        raise Terminated()

    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, terminate)


def interrupt_exit_code(err: BaseException) -> int:
    """130 for Ctrl-C, 143 for SIGTERM (128 + the signal's number, as shells report them)."""
    return 128 + (signal.SIGTERM if isinstance(err, Terminated) else signal.SIGINT)


def interrupt_message(err: BaseException) -> str:
    """What an interrupted command says: which signal, and what it wrote (whole) or that it wrote nothing."""
    from twin.files import WRITTEN

    what = "terminated (SIGTERM)" if isinstance(err, Terminated) else "interrupted"
    if not WRITTEN:
        return f"{what}; nothing was written"
    return f"{what}; written whole before it: {', '.join(str(p) for p in WRITTEN)}"


def _interrupt_main_later(signum: int) -> None:
    time.sleep(0.02)  # the main thread has left the hook (a signal handled inside it would be lost for good)
    signal.pthread_kill(threading.main_thread().ident, signum)  # a real signal: it also ends a wait


def _redeliver_interrupts(unraisable: sys.UnraisableHookArgs) -> None:
    """A Ctrl-C or SIGTERM that lands while Python finalises an object (a generator of a SimPy process) is only
    reported as "ignored", with a traceback, and the command would go on to its end as if nothing had happened.
    Say nothing, and deliver the signal again to the main thread once the finaliser is done."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        signum = signal.SIGTERM if isinstance(unraisable.exc_value, Terminated) else signal.SIGINT
        threading.Thread(target=_interrupt_main_later, args=(signum,), daemon=True).start()
        return
    sys.__unraisablehook__(unraisable)


def main() -> None:
    sys.unraisablehook = _redeliver_interrupts
    try:
        install_signal_handlers()
        from twin.cli.app import main as cli_main
    except KeyboardInterrupt as err:
        sys.stderr.write(interrupt_message(err) + "\n")
        sys.exit(interrupt_exit_code(err))
    cli_main()
