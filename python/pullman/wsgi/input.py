"""``wsgi.input``: the request body as a file, read from the hub chunk by chunk."""

from __future__ import annotations

from typing import Iterator, List, Optional

from .._interface import Request


class Input:
    """A read-only binary file over :meth:`Request.read`. Nothing is read before the app asks,
    and at most one chunk beyond what it asked for is held."""

    __slots__ = ("_request", "_buffer", "_ended")

    def __init__(self, request: Request) -> None:
        self._request = request
        # bytearray: deleting from its front is O(1) amortized, so small reads out of a large
        # chunk do not copy the rest each time.
        self._buffer = bytearray()
        self._ended = False

    def _fill(self) -> bool:
        """Appends the next chunk to the buffer; False once the body has ended."""
        if self._ended:
            return False
        chunk = self._request.read()
        if not chunk:
            self._ended = True
            return False
        self._buffer += chunk
        return True

    def _take(self, size: int) -> bytes:
        out = bytes(self._buffer[:size])
        del self._buffer[:size]
        return out

    def read(self, size: Optional[int] = -1) -> bytes:
        """Up to ``size`` bytes (all the rest if ``size`` is None or negative); ``b""`` at the
        end. Waits until ``size`` bytes or the end arrive."""
        if size is None or size < 0:
            parts = [self._take(len(self._buffer))]
            while not self._ended:
                chunk = self._request.read()
                if not chunk:
                    self._ended = True
                else:
                    parts.append(chunk)
            return b"".join(parts)
        while len(self._buffer) < size and self._fill():
            pass
        return self._take(size)

    def read1(self, size: int = -1) -> bytes:
        """What is buffered, or else the next chunk (at most ``size`` bytes): no waiting for
        more than one chunk."""
        if not self._buffer:
            self._fill()
        return self._take(len(self._buffer) if size is None or size < 0 else size)

    def readline(self, size: Optional[int] = -1) -> bytes:
        """Up to and including the next ``\\n`` (or ``size`` bytes, or the end)."""
        limit = -1 if size is None else size
        searched = 0
        while True:
            newline = self._buffer.find(b"\n", searched)
            if newline >= 0:
                end = newline + 1
                break
            searched = len(self._buffer)
            if 0 <= limit <= searched or not self._fill():
                end = searched
                break
        if 0 <= limit < end:
            end = limit
        return self._take(end)

    def readlines(self, hint: int = -1) -> List[bytes]:
        """Lines until the end, or until their total length reaches ``hint`` (if positive)."""
        lines: List[bytes] = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        """A no-op: the runner owns the request."""
