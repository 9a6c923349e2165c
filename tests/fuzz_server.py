"""A fork server for the fuzz suite: imports the ``twin`` CLI once, then runs each command in a fresh fork.

    python tests/fuzz_server.py        # reads one JSON request a line: {"argv": [...], "cwd": "...", "cap_s": 120}
                                       # writes one JSON reply a line: {"rc", "stdout", "stderr", "maxrss_mb", ...}

Each command runs in its own process through the console script's entry point (``twin.cli.entry:main``),
exactly as ``twin ARGS`` would, minus the 2-3 s import: a fuzz suite can afford hundreds. A child
still running after ``cap_s`` seconds is killed and reported as a hang; ``maxrss_mb`` is the child's
peak memory (from ``wait4``), so memory is measured, not guessed.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

os.environ["COLUMNS"] = "200"  # as tests/conftest.py:run_cli, before rich reads it

from twin.cli import app as _app  # noqa: F401  (imported once, before the forks)
from twin.cli.entry import main as twin_main


def _child(argv: list[str], cwd: str, out_path: str, err_path: str) -> None:
    os.chdir(cwd)
    out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(out, 1)
    os.dup2(err, 2)
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.argv = ["twin", *argv]
    signal.signal(signal.SIGINT, signal.default_int_handler)
    code: int = 0
    try:
        twin_main()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:  # reported as an escaped traceback: a bug
        import traceback

        traceback.print_exc()
        code = 99
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _serve_one(request: dict) -> dict:
    cwd = request["cwd"]
    out_path, err_path = os.path.join(cwd, ".fuzz-stdout"), os.path.join(cwd, ".fuzz-stderr")
    sys.stdout.flush()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(request["argv"], cwd, out_path, err_path)
    timed_out = False
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - start > request.get("cap_s", 120):
            timed_out = True
            os.kill(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            break
        time.sleep(0.005)
    seconds = time.monotonic() - start
    texts = []
    for path in (out_path, err_path):
        with open(path, encoding="utf-8", errors="replace") as file:
            texts.append(file.read(200_000))
        os.unlink(path)
    return {
        "rc": os.waitstatus_to_exitcode(status),
        "stdout": texts[0],
        "stderr": texts[1],
        "maxrss_mb": usage.ru_maxrss / 1024,
        "seconds": seconds,
        "timed_out": timed_out,
    }


def main() -> None:
    for line in sys.stdin:
        if line.strip():
            sys.stdout.write(json.dumps(_serve_one(json.loads(line))) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
