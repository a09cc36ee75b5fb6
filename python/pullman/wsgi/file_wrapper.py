"""``wsgi.file_wrapper``: a file served in blocks."""

from __future__ import annotations

from typing import Any, Iterator

BLOCK_SIZE = 64 * 1024
"""Default block: large enough that a file costs few writes, small enough to hold one per
thread without care."""


class FileWrapper:
    """Iterates a file-like object's ``read(block_size)`` until it returns nothing; ``close``
    closes the file, as PEP 3333 asks."""

    def __init__(self, filelike: Any, block_size: int = BLOCK_SIZE) -> None:
        self.filelike = filelike
        self.block_size = block_size
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self) -> Iterator[bytes]:
        while True:
            block = self.filelike.read(self.block_size)
            if not block:
                return
            yield block
