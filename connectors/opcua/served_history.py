"""HistoryRead for the twin's OPC-UA server: the last values of every variable, in bounded memory.

    >>> history = ServedHistory(depth=1000)
    >>> history.install(server)                 # answers the server's HistoryRead service
    >>> history.track(node_id)                  # a variable whose history is kept (Historizing, HistoryRead access)
    >>> history.record(node_id, data_value)     # called by the publisher for every value it writes

What a client gets:

- ``ReadRawModifiedDetails`` (raw, not modified): the kept values of a tracked variable between
  ``StartTime`` and ``EndTime`` in time order (reversed when only ``EndTime`` is given or it is before
  ``StartTime``), at most ``NumValuesPerNode`` at a time with a continuation point for the rest;
- ``BadHistoryOperationUnsupported`` for a variable whose history is not kept, for modified values,
  for processed (aggregate) and at-time reads, and for event history;
- ``BadContinuationPointInvalid`` for a continuation point this server did not hand out.

Each variable keeps its last ``depth`` values (``HISTORY_DEPTH`` by default): the memory is bounded
whatever the run length, and the oldest values go first. A kept value takes about 350 bytes (measured
with tracemalloc), so a variable that changes at every publish holds about 350 kB at the default depth:
the clock-driven variables of an 8-unit line (about 20) some 7 MB, those of a 500-unit line some 350 MB
(``twin serve --history-depth`` sets the depth).
"""

from __future__ import annotations

import itertools
import struct
from collections import deque
from datetime import datetime
from typing import Any

from asyncua import Server, ua

HISTORY_DEPTH = 1000
"""Values kept per variable."""

_EPOCH = ua.get_win_epoch()
_MAX_PER_READ = 10000  # a read without NumValuesPerNode is cut here, with a continuation point


def _unset(t: datetime | None) -> bool:
    return t is None or t == _EPOCH or t.replace(tzinfo=None) == _EPOCH.replace(tzinfo=None)


class ServedHistory:
    """The last ``depth`` DataValues of each tracked variable, served through HistoryRead."""

    def __init__(self, depth: int = HISTORY_DEPTH):
        if depth < 1:
            raise ValueError("history depth must be at least 1")
        self.depth = depth
        self._values: dict[ua.NodeId, deque[tuple[int, ua.DataValue]]] = {}
        self._seq = itertools.count()
        self._server: Server | None = None

    def install(self, server: Server) -> None:
        """Make this object answer ``server``'s HistoryRead service."""
        self._server = server
        server.iserver.history_manager.read_history = self.read_history  # asyncua's answers Good with no values

    def track(self, node_id: ua.NodeId) -> None:
        """Keep the history of a variable (its attributes say so once the server is built: see ``mark``)."""
        self._values.setdefault(node_id, deque(maxlen=self.depth))

    def tracked(self) -> list[ua.NodeId]:
        return list(self._values)

    async def mark(self) -> None:
        """Set ``Historizing`` and the ``HistoryRead`` access bit of every tracked variable."""
        assert self._server is not None
        for node_id in self._values:
            node = self._server.get_node(node_id)
            level = await node.read_attribute(ua.AttributeIds.AccessLevel)
            bits = (level.Value.Value or 0) | ua.AccessLevel.HistoryRead.mask
            for attr in (ua.AttributeIds.AccessLevel, ua.AttributeIds.UserAccessLevel):
                await self._server.write_attribute_value(
                    node_id, ua.DataValue(ua.Variant(bits, ua.VariantType.Byte)), attr
                )
            await self._server.write_attribute_value(
                node_id, ua.DataValue(ua.Variant(True, ua.VariantType.Boolean)), ua.AttributeIds.Historizing
            )

    def record(self, node_id: ua.NodeId, value: ua.DataValue) -> None:
        """Keep a value just written (nothing happens for an untracked variable)."""
        kept = self._values.get(node_id)
        if kept is not None:
            kept.append((next(self._seq), value))

    def clear(self) -> None:
        """Forget every value (a new run from time 0)."""
        for kept in self._values.values():
            kept.clear()

    # ------------------------------------------------------------------------------------------ the service

    async def read_history(self, params: ua.HistoryReadParameters) -> list[ua.HistoryReadResult]:
        details = params.HistoryReadDetails
        out = []
        for item in params.NodesToRead:
            result = ua.HistoryReadResult()
            if params.ReleaseContinuationPoints:
                result.StatusCode = ua.StatusCode()  # nothing is held for a continuation point
            elif not self._serves(details, item.NodeId):
                result.StatusCode = ua.StatusCode(ua.StatusCodes.BadHistoryOperationUnsupported)
            else:
                self._read_raw(item, details, result)
            out.append(result)
        return out

    def _serves(self, details: Any, node_id: ua.NodeId) -> bool:
        raw = isinstance(details, ua.ReadRawModifiedDetails) and not details.IsReadModified
        return raw and node_id in self._values

    def _read_raw(self, item: ua.HistoryReadValueId, details: ua.ReadRawModifiedDetails, result: Any) -> None:
        start, end = details.StartTime, details.EndTime
        if _unset(start) and _unset(end):
            result.StatusCode = ua.StatusCode(ua.StatusCodes.BadHistoryOperationInvalid)
            return
        backward = _unset(start) or (not _unset(end) and start > end)
        low, high = (end, start) if backward and not _unset(start) else (start, end)
        if backward and _unset(start):
            low, high = None, end
        kept = list(self._values[item.NodeId])
        if backward:
            kept.reverse()
        selected = [
            (seq, dv)
            for seq, dv in kept
            if (low is None or _unset(low) or dv.SourceTimestamp >= low)
            and (high is None or _unset(high) or dv.SourceTimestamp <= high)
        ]
        if item.ContinuationPoint:
            if len(item.ContinuationPoint) != 8:
                result.StatusCode = ua.StatusCode(ua.StatusCodes.BadContinuationPointInvalid)
                return
            (after,) = struct.unpack("<q", item.ContinuationPoint)
            selected = [(seq, dv) for seq, dv in selected if (seq < after if backward else seq > after)]
        limit = details.NumValuesPerNode or _MAX_PER_READ
        page, rest = selected[:limit], selected[limit:]
        result.HistoryData = ua.HistoryData(DataValues=[dv for _seq, dv in page])
        if rest:
            result.ContinuationPoint = struct.pack("<q", page[-1][0])
