"""Line framing for the text formats (CSV, libsvm): a stream's chunks cut at line ends, so that a decoder always
sees whole lines and knows the line number and byte they start at. A line may be at most ``limits.line_bytes()``:
a file without line ends is not text of either format, and must not be held whole."""

from __future__ import annotations

from ..errors import DataError
from .blocks import Block
from .limits import line_bytes


class LineDecoder:
    """Turns the bytes of one source into Blocks, whole lines at a time; ``decode`` is the format's part."""

    format_name = "text"
    fixed_width = True  # every record says how wide it is (libsvm's do not: see FeatureCheck)

    def __init__(self, where: str):
        self.where = where
        self.max_line = line_bytes()
        self._tail = b""
        self.line = 1  # number of the first line not yet decoded
        self.offset = 0  # its byte in the source

    def feed(self, chunk: bytes) -> list[Block]:
        buf = self._tail + chunk if self._tail else chunk
        cut = buf.rfind(b"\n") + 1
        self._tail = buf[cut:]
        blocks = self._lines(buf[:cut]) if cut else []
        if len(self._tail) > self.max_line:
            raise DataError(f"line {self.line} (byte {self.offset}) of {self.where} runs past {self.max_line / 1e6:g} MB without "
                            f"a line end: not {self.format_name}? (the limit is TRAIN_MAX_LINE_MB)")
        return blocks

    def finish(self) -> list[Block]:
        tail, self._tail = self._tail, b""
        return self._lines(tail) if tail.strip() else []

    def _lines(self, text: bytes) -> list[Block]:
        blocks = self.decode(text)
        self.line += text.count(b"\n")
        self.offset += len(text)
        return blocks

    def decode(self, text: bytes) -> list[Block]:
        """Whole lines -> blocks; messages name lines from ``self.line`` and bytes from ``self.offset``."""
        raise NotImplementedError
