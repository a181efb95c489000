"""A channel as the algorithms see it: passes (epochs) of decoded blocks.

Pipeline: source (files or the epoch's FIFO) -> format decoder -> blocks. Each
call to ``next_pass`` is one epoch: File mode reads the files again, Pipe mode
opens the next FIFO (``<channel>_<epoch>``, each opened exactly once).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from ..errors import ConfigError, DataError, shown
from . import limits, media, recordio
from .blocks import Block, first_beyond, first_non_finite, gather, widened
from .csv_codec import CsvDecoder
from .libsvm_codec import LibsvmDecoder
from .limits import MAX_FEATURES
from .protobuf_codec import RecordIOProtobufDecoder
from .sources import channel_files, fifo_chunks, file_chunks

log = logging.getLogger(__name__)

SUPPORTED = media.names("channel")
INPUT_MODES = ("File", "Pipe", "FastFile")  # FastFile streams files on access: read as File mode
COMPRESSIONS = ("None", "Gzip")  # Gzip: File mode reads every file as gzip; in Pipe mode SageMaker decompresses
SUFFIXES = {".csv": media.CSV, ".libsvm": media.LIBSVM, ".svm": media.LIBSVM}  # File mode without a ContentType


def content_types() -> list[str]:
    """Every ContentType a channel accepts, spelled as a listing must match them (CSV with and without labels)."""
    return [t for name in SUPPORTED for t in ([name, f"{name};label_size=0", f"{name};label_size=1"] if name == media.CSV else [name])]


def _decoder(kind: media.MediaType, where: str):
    if kind.essence == media.CSV:
        return CsvDecoder(where, label_size(kind))
    if kind.essence == media.LIBSVM:
        return LibsvmDecoder(where)
    return RecordIOProtobufDecoder(where)


def label_size(kind: media.MediaType) -> int:
    raw = kind.params.get("label_size", "1")
    if raw not in ("0", "1"):
        raise ConfigError(f"content type {kind}: label_size={raw} is not supported; use 0 (no label column) or 1")
    return int(raw)


@dataclass
class ChannelSpec:
    """One entry of inputdataconfig.json."""

    name: str
    mode: str = "File"
    content_type: media.MediaType | None = None
    distribution: str = "FullyReplicated"
    record_wrapper: str = "None"
    compression: str = "None"

    @classmethod
    def from_config(cls, name: str, cfg: dict) -> "ChannelSpec":
        if not isinstance(cfg, dict):
            raise ConfigError(f"inputdataconfig.json: channel '{name}' must be an object, got {type(cfg).__name__}")
        mode = cfg.get("TrainingInputMode", "File")
        if mode not in INPUT_MODES:
            raise ConfigError(f"channel '{name}': TrainingInputMode={shown(mode)!r} is not supported; use one of {', '.join(INPUT_MODES)}")
        compression = cfg.get("CompressionType", "None")
        if compression not in COMPRESSIONS:
            raise ConfigError(f"channel '{name}': CompressionType={shown(compression)!r} is not supported; use None or Gzip")
        kind = media.parse(cfg["ContentType"]) if cfg.get("ContentType") else None
        if kind is not None:
            if kind.essence not in SUPPORTED:
                raise ConfigError(
                    f"channel '{name}': ContentType {cfg['ContentType']!r} is not supported; supported: {', '.join(SUPPORTED)}"
                )
            label_size(kind)
        return cls(name, "File" if mode == "FastFile" else mode, kind, cfg.get("S3DistributionType", "FullyReplicated"),
                   cfg.get("RecordWrapperType", "None"), compression)


class FeatureCheck:
    """Every record of every channel must have the same feature count: ``feature_dim`` when the algorithm declares
    it, else the first one seen; and no more than ``max_features``, the most the algorithm can train on within
    ``limits.model_bytes`` (``why`` says what grows with the width).

    text/libsvm records carry no width, only their largest index: they are widened to the expected count and may not
    reach beyond it. Before any count is known, an algorithm that gathers its records in memory takes them as they
    are (``blocks.concat`` widens them to the widest); one that streams them (``needs_width``) needs feature_dim."""

    def __init__(self, expected: int | None, max_features: int = MAX_FEATURES, why: str = "", needs_width: bool = False):
        self.expected, self.max_features, self.why, self.needs_width = expected, max_features, why, needs_width
        self.source = "feature_dim" if expected is not None else ""
        self.libsvm_width = 0  # the widest text/libsvm records seen before a count was known
        if expected is not None and expected > max_features:
            raise ConfigError(self._too_wide("feature_dim", expected))

    def _too_wide(self, what: str, width: int) -> str:
        return (f"{what} has {width:,} features; training can take at most {self.max_features:,} within "
                f"TRAIN_MAX_MODEL_MB={limits.model_bytes() // 1_000_000} ({self.why}). Is the (sparse) shape right?")

    def __call__(self, block: Block, where: str, first_record: int, fixed: bool = True) -> Block:
        """The block as the algorithm takes it; ``fixed``: its records say how wide they are (all but libsvm's)."""
        width = block.n_features
        if width > self.max_features:
            if fixed:
                raise DataError(self._too_wide(f"{where}: record {first_record}", width))
            row, column = first_beyond(block.X, self.max_features)
            raise DataError(self._too_wide(f"{where}: record {first_record + row}, reaching index {column:,},", column + 1))
        if not fixed:
            return self._libsvm(block, where, first_record)
        if self.expected is None:
            if width < self.libsvm_width:
                raise DataError(f"{where}: records from {first_record} on have {width} features, but text/libsvm records "
                                f"before them reach index {self.libsvm_width - 1}")
            self.expected, self.source = width, f"the first records ({where})"
        elif width != self.expected:
            raise DataError(
                f"{where}: records from {first_record} on have {width} features, "
                f"but {self.source}{'=' if self.source == 'feature_dim' else ' have '}{self.expected}"
            )
        return block

    def _libsvm(self, block: Block, where: str, first_record: int) -> Block:
        if self.expected is None:
            if self.needs_width:
                raise ConfigError(f"{where} is text/libsvm, whose records carry no width, and this algorithm streams its "
                                  "records: set feature_dim, the number of features")
            self.libsvm_width = max(self.libsvm_width, block.n_features)
            return block
        if block.n_features > self.expected:
            row, column = first_beyond(block.X, self.expected)
            limit = f"feature_dim={self.expected}" if self.source == "feature_dim" else f"the {self.expected} features of {self.source}"
            raise DataError(f"{where}: record {first_record + row} has feature index {column}, beyond {limit} (indices count from 0)")
        return Block(widened(block.X, self.expected), block.y)


@dataclass
class Channel:
    spec: ChannelSpec
    data_dir: Path
    pipe_timeout: float = 600.0
    passes_done: int = 0
    bytes_last_pass: int = 0
    files: list[Path] = field(default_factory=list)
    feature_check: FeatureCheck | None = None

    def __post_init__(self):
        if self.spec.mode == "File":
            self.files = channel_files(self.data_dir / self.spec.name, self.data_dir)

    @property
    def name(self) -> str:
        return self.spec.name

    def describe(self) -> str:
        ct = str(self.spec.content_type) if self.spec.content_type else self._default_note()
        where = (
            f"{len(self.files)} files, {sum(f.stat().st_size for f in self.files):,} bytes"
            if self.spec.mode == "File"
            else f"FIFOs {self.data_dir / self.spec.name}_<epoch>"
        )
        wrapper = ", record wrapper=RecordIO (one record per S3 object)" if self.spec.record_wrapper == "RecordIO" else ""
        return f"{shown(self.name)}: mode={self.spec.mode}, content type={ct}, distribution={shown(self.spec.distribution)}{wrapper}, {where}"

    def _default_note(self) -> str:
        if self.spec.mode == "Pipe":
            return f"{media.RECORDIO_PROTOBUF} (no ContentType given: default for Pipe mode)"
        return f"none given: {media.CSV} for .csv files, {media.LIBSVM} for .libsvm and .svm, {media.RECORDIO_PROTOBUF} otherwise"

    def _media_for(self, path: Path | None) -> media.MediaType:
        if self.spec.content_type is not None:
            return self.spec.content_type
        name = "" if path is None else path.name.removesuffix(".gz")
        return media.parse(SUFFIXES.get(name[name.rfind("."):] if "." in name else "", media.RECORDIO_PROTOBUF))

    def _sources(self, epoch: int):
        """(where, media type, byte chunks) per source; with a RecordIO wrapper, per wrapped S3 object."""
        if self.spec.mode == "Pipe":
            fifo = self.data_dir / f"{self.name}_{epoch}"
            streams = [(f"FIFO {shown(fifo)}", self._media_for(None), fifo_chunks(fifo, self.pipe_timeout))]
        else:
            streams = ((shown(path), self._media_for(path), file_chunks(path, gzipped=self.spec.compression == "Gzip"))
                       for path in self.files)
        for where, kind, chunks in streams:
            if self.spec.record_wrapper != "RecordIO":
                yield where, kind, chunks
                continue
            for i, payload in enumerate(recordio.unwrap(chunks, where)):
                yield f"{where}, wrapped object {i}", kind, [payload]

    def next_pass(self) -> Iterator[Block]:
        """One epoch over the channel, as blocks in record order."""
        epoch = self.passes_done
        self.passes_done += 1
        self.bytes_last_pass = 0
        for where, kind, chunks in self._sources(epoch):
            decoder = _decoder(kind, where)
            first = 0
            for chunk in chunks:
                self.bytes_last_pass += len(chunk)
                for block in decoder.feed(chunk):
                    yield self._checked(block, where, first, decoder.fixed_width)
                    first += len(block)
            for block in decoder.finish():
                yield self._checked(block, where, first, decoder.fixed_width)
                first += len(block)

    def _checked(self, block: Block, where: str, first: int, fixed: bool) -> Block:
        if self.feature_check is not None:
            block = self.feature_check(block, where, first, fixed)
        bad = first_non_finite(block.X)
        if bad is not None:
            raise DataError(f"{where}: record {first + bad[0]} has a NaN or infinite feature value")
        return block

    def read_all(self) -> Block | None:
        """The next pass, in memory (in-memory algorithms), or None if it has no records."""
        return gather(self.next_pass())


def open_channels(config: dict, data_dir: Path, pipe_timeout: float) -> dict[str, Channel]:
    return {
        name: Channel(ChannelSpec.from_config(name, cfg), data_dir, pipe_timeout) for name, cfg in sorted(config.items())
    }
