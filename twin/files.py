"""Files people can share: every output appears whole in one rename, honours the umask, leaves no debris.

    >>> with atomic_path(Path("out/scene.usdc"), suffix=".usdc") as tmp:   # a temporary file beside it
    ...     layer.Export(str(tmp))
    >>> write_atomically(Path("calibrated.yaml"), text)
    >>> with atomic_path(Path("runs/base"), folder=True) as tmp:           # a folder to fill
    ...     (tmp / "kpis.json").write_text("{}")

The temporary name (``.NAME.HOST-PID-NONCE.tmp``) says which process owns it; a writer killed with
SIGKILL leaves it behind, and the next write to the same place removes it once its owner is gone.
``tempfile.mkstemp``/``mkdtemp`` are not used: they create 0600 files and 0700 folders whatever the
umask, so a colleague, the dashboard service or Omniverse could not read the result.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# the latest outputs this process put in place (the CLI names them when it is interrupted); bounded, so a
# service that writes for months (dashboard, sync) does not grow it
WRITTEN: deque[Path] = deque(maxlen=64)
_NAME_KEEP = 100  # characters of the target's name kept in a temporary name (file names have at most 255)


def current_umask() -> int:
    """The process's umask, read without changing it (``os.umask`` would, for a moment, for every thread)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # no /proc: read it the old way
    os.umask(mask)
    return mask


def shared_mode(folder: bool = False) -> int:
    """The mode a new file (0666) or folder (0777) gets under the current umask: 0644 / 0755 under 022."""
    return (0o777 if folder else 0o666) & ~current_umask()


def owner_tag() -> str:
    """A name for work in progress that says which live process owns it: ``HOST-PID-NONCE``."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:12]}"


def owner_alive(name: str) -> bool:
    """Whether the process that named work in progress ``HOST-PID-NONCE`` may still be at work."""
    parts = name.rsplit("-", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return False
    if parts[0] != socket.gethostname():
        return True  # another machine's: not ours to judge
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _prefix(target: Path) -> str:
    return f".{target.name[:_NAME_KEEP]}."


def temporary_name(target: Path, suffix: str = "") -> Path:
    """A fresh temporary name beside ``target``, owned by this process (``suffix`` keeps an extension)."""
    return target.parent / f"{_prefix(target)}{owner_tag()}.tmp{suffix}"


def clear_debris(target: Path) -> list[Path]:
    """Remove the temporary files and folders that dead writers of ``target`` left beside it; what was removed."""
    prefix = _prefix(target)
    removed = []
    try:
        siblings = list(target.parent.iterdir())
    except OSError:
        return removed
    for path in siblings:
        name = path.name
        if not name.startswith(prefix) or ".tmp" not in name[len(prefix) :]:
            continue
        if owner_alive(name[len(prefix) :].rsplit(".tmp", 1)[0]):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()
        removed.append(path)
    return removed


@contextmanager
def atomic_path(target: str | Path, folder: bool = False, suffix: str = "") -> Iterator[Path]:
    """A temporary path beside ``target`` to write; it replaces ``target`` in one rename, or vanishes.

    With ``folder`` the folder is created (and ``target`` must not exist: a folder is never replaced);
    otherwise the caller creates the file, and an existing file at ``target`` is replaced. The result
    has the umask's mode (0644 files, 0755 folders under umask 022), whatever library wrote it.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clear_debris(target)
    tmp = temporary_name(target, suffix)
    if folder:
        tmp.mkdir()
    try:
        yield tmp
        os.chmod(tmp, shared_mode(folder))  # some writers (USD) create their files 0600
        if folder:
            os.rename(tmp, target)  # one step: all there, or not there at all
        else:
            os.replace(tmp, target)
        WRITTEN.append(target)
    except BaseException:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        elif folder and target.exists() and target not in WRITTEN:  # interrupted right after the rename: whole
            WRITTEN.append(target)
        raise


def write_atomically(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` in one step, replacing what was there."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding="utf-8")
    return path
