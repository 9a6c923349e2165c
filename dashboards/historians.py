"""Which plant historians the dashboard's pages may open: the files given at start, and those under one folder.

    >>> access = HistorianAccess(files=(Path("plant.db"),), folder=Path("/srv/historians"))
    >>> access.resolve("plant.db")                 # a file given at start
    >>> access.resolve("line-2.db")                # a relative name is looked for in the folder
    >>> access.resolve("/etc/passwd")              # LookupError: not one this dashboard may open

A path typed into a page (or given as ``?historian=``) is resolved (``..`` and symbolic links
followed) before it is compared, and refused before anything is opened, so the pages cannot be used to
read, or to learn of, any other file on the server.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class HistorianAccess:
    """The historian files given with ``--historian``, and the folder given with ``--historian-dir``."""

    files: tuple[Path, ...] = ()
    folder: Path | None = None

    @property
    def default(self) -> str:
        """The historian the pages show first (the first file given), or ""."""
        return str(self.files[0]) if self.files else ""

    def resolve(self, text: str) -> Path:
        """The historian ``text`` names, resolved, if the pages may open it; ``LookupError`` saying why not."""
        text = text.strip()
        if not self.files and self.folder is None:
            raise LookupError(
                "This dashboard opens no historian: start it with `twin dashboard --historian FILE` "
                "(the file `twin sync --historian` writes) or `--historian-dir DIR`."
            )
        if not text:
            raise LookupError("Give the historian that `twin sync --historian FILE` writes.")
        path = Path(text)
        if not path.is_absolute() and self.folder is not None and not self._given(path):
            path = self.folder / path
        real = Path(os.path.realpath(path))
        if self._given(real):
            return real
        if self.folder is not None:
            folder = Path(os.path.realpath(self.folder))
            if real != folder and real.is_relative_to(folder):
                return real
        raise LookupError(f"{text!r} is not a historian this dashboard may open: it opens {self._allowed()}.")

    def _given(self, path: Path) -> bool:
        real = os.path.realpath(path)
        return any(real == os.path.realpath(f) for f in self.files)

    def _allowed(self) -> str:
        parts = [", ".join(str(f) for f in self.files)] if self.files else []
        if self.folder is not None:
            parts.append(f"the files under {self.folder}")
        return " and ".join(parts)
