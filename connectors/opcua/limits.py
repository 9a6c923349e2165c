"""Limits of the twin's OPC-UA servers against silent, garbage and greedy clients (no asyncua import: the CLI
reads these defaults for its help). ``guard`` enforces them; ``ServerOptions`` carries them.
"""

from __future__ import annotations

HANDSHAKE_TIMEOUT_S = 10.0  # a connection must send its Hello and activate a session within this
MAX_SESSIONS = 50  # sessions open at once (a session whose client vanished counts until asyncua drops it)
