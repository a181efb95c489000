"""Model artifacts that loading cannot turn into code execution, a hang, or a read outside the model folder.

Arrays go into ``model.npz`` (read back with ``allow_pickle=False``, so object
arrays are refused), everything else into ``manifest.json``, written last: a
model directory without a manifest is no model. Files are staged under
temporary names inside the target folder (it may be a mount point, so no
rename across file systems) and renamed one by one.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from . import __version__, npy
from .errors import UserError, shown

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ARRAYS = "model.npz"
MAX_MANIFEST_BYTES = 16 << 20


class ModelFormatError(UserError):
    """The model directory is missing, damaged, or written by an incompatible image."""


def _sha256(f: BinaryIO) -> str:
    digest = hashlib.sha256()
    while block := f.read(1 << 20):
        digest.update(block)
    return digest.hexdigest()


class ArtifactWriter:
    """Stages and publishes one model (or checkpoint); ``discard`` removes whatever it wrote."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.written: list[Path] = []

    def _publish(self, name: str, write) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        final = self.folder / name
        staged = self.folder / f".{name}.partial-{os.getpid()}"
        self.written.append(staged)
        with open(staged, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(staged, final)
        self.written.append(final)
        return final

    def save(self, algorithm: str, arrays: dict, meta: dict) -> None:
        for key, value in arrays.items():
            if np.asarray(value).dtype == object:
                raise TypeError(f"array {key!r} has dtype object; artifacts hold plain numeric arrays only")
        npz = self._publish(ARRAYS, lambda f: np.savez(f, **arrays))
        manifest = {
            "format_version": FORMAT_VERSION,
            "project_version": __version__,
            "algorithm": algorithm,
            "arrays": ARRAYS,
            "arrays_sha256": _sha256(open(npz, "rb")),
            "meta": meta,
        }
        self._publish(MANIFEST, lambda f: f.write(json.dumps(manifest, indent=2, sort_keys=True).encode()))

    def discard(self) -> None:
        for path in self.written:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        self.written = []


def _open_regular(path: Path) -> BinaryIO:
    """``path`` opened for reading if it is a regular file itself: not a link (it could lead out of the model
    folder, to /dev/zero), not a FIFO or device (a read that never ends)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ModelFormatError(f"no model in {path.parent}: {path.name} is missing") from None
    except OSError as exc:
        raise ModelFormatError(f"{path} cannot be opened ({os.strerror(exc.errno)}); a model file must be a regular "
                               "file, not a link") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ModelFormatError(f"{path} is not a regular file (a FIFO, device or folder)")
    return os.fdopen(fd, "rb")


def _arrays(f: BinaryIO, path: Path) -> dict[str, np.ndarray]:
    """The arrays of an .npz archive whose members are stored, not compressed: no member can expand beyond the
    bytes it takes in the file, and each is read by ``npy.read``, which allocates only what is really there."""
    try:
        archive = zipfile.ZipFile(f)
        members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ModelFormatError(f"{path} is not an .npz archive: {exc}") from None
    arrays = {}
    for info in members:
        name = info.filename
        if not name.endswith(".npy") or "/" in name or name[:-4] in arrays:
            raise ModelFormatError(f"{path} holds an unexpected member {shown(name)!r}")
        if info.compress_type != zipfile.ZIP_STORED:
            raise ModelFormatError(f"{path}: member {shown(name)!r} is compressed; models hold uncompressed arrays (np.savez)")
        try:
            with archive.open(info) as member:
                arrays[name[:-4]] = npy.read(member, info.file_size)
        except (npy.NpyError, zipfile.BadZipFile, OSError) as exc:
            raise ModelFormatError(f"{path}: member {shown(name)!r}: {exc}") from None
    return arrays


def load(folder: Path) -> tuple[dict, dict]:
    """(manifest, arrays) of a model directory; ModelFormatError with the reason if it cannot be read.

    The checksum proves the arrays are the ones the manifest was written with, not that whoever wrote both
    was this image: ``check_arrays``/``check_meta`` and each model's ``check`` validate the structure."""
    with _open_regular(folder / MANIFEST) as f:
        text = f.read(MAX_MANIFEST_BYTES + 1)
    if len(text) > MAX_MANIFEST_BYTES:
        raise ModelFormatError(f"{folder / MANIFEST} is larger than {MAX_MANIFEST_BYTES:,} bytes")
    try:
        manifest = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ModelFormatError(f"{folder / MANIFEST} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise ModelFormatError(f"{folder / MANIFEST} is not a JSON object")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFormatError(
            f"model format version {shown(version)} in {folder / MANIFEST} cannot be read by this image "
            f"(version {__version__} reads format {FORMAT_VERSION}); retrain or use a matching image"
        )
    if manifest.get("arrays", ARRAYS) != ARRAYS or not isinstance(manifest.get("meta"), dict) or not isinstance(manifest.get("algorithm"), str):
        raise ModelFormatError(f"{folder / MANIFEST} must name its arrays {ARRAYS!r} and hold 'algorithm' (a name) and 'meta' (an object)")
    with _open_regular(folder / ARRAYS) as f:
        if _sha256(f) != manifest.get("arrays_sha256"):
            raise ModelFormatError(f"{folder / ARRAYS} does not match its checksum in {MANIFEST}")
        f.seek(0)
        arrays = _arrays(f, folder / ARRAYS)
    return manifest, arrays


# ----------------------------------------------------------------------------- structure declared by each model


@dataclass(frozen=True)
class ArraySpec:
    """What one artifact array must be: a dtype kind ("f" floats, "i" signed, "u" unsigned integers; several
    letters: any of them), and its shape, one entry per axis: a dimension name (every array naming it agrees, and
    it is at least 1), a number, or None (any length). ``shapes`` lists alternatives; ``finite``: no NaN or infinity."""

    kinds: str
    shapes: tuple
    finite: bool = True


def check_arrays(specs: dict[str, ArraySpec], arrays: dict, owner: str) -> dict[str, int]:
    """The dimensions the arrays agree on (name -> length); ModelFormatError naming the first array that is not
    as declared."""
    if set(arrays) != set(specs):
        missing, extra = sorted(set(specs) - set(arrays)), sorted(set(arrays) - set(specs))
        raise ModelFormatError(f"the {owner} model's arrays are not as declared: missing {missing}, unexpected {[shown(e) for e in extra]}")
    dims: dict[str, int] = {}
    for name, spec in specs.items():
        a = arrays[name]
        if a.dtype.kind not in spec.kinds:
            raise ModelFormatError(f"the {owner} model's array {name!r} has dtype {a.dtype}, not of kind {spec.kinds!r}")
        if not any(_bind(shape, a.shape, dims) for shape in spec.shapes):
            want = " or ".join(str(tuple(shape)) for shape in spec.shapes)
            raise ModelFormatError(f"the {owner} model's array {name!r} has shape {a.shape}; {want} expected "
                                   f"(with {', '.join(f'{k}={v}' for k, v in dims.items()) or 'no dimensions known yet'})")
        if spec.finite and a.dtype.kind == "f" and not np.isfinite(a).all():
            raise ModelFormatError(f"the {owner} model's array {name!r} holds NaN or infinite values")
    return dims


def _bind(shape: tuple, actual: tuple, dims: dict) -> bool:
    """Whether ``actual`` fits ``shape``; names not yet bound are bound (only when the whole shape fits)."""
    if len(shape) != len(actual):
        return False
    new = {}
    for want, got in zip(shape, actual):
        if isinstance(want, str):
            if got == 0:  # a named dimension is never empty; an array that may be declares a (0,) alternative
                return False
            known = dims.get(want, new.get(want))
            if known is None:
                new[want] = got
            elif known != got:
                return False
        elif want is not None and want != got:
            return False
    dims.update(new)
    return True


def check_meta(constraints: dict, meta: dict, owner: str) -> dict:
    """The declared meta values, each parsed by its constraint (the hyperparameter constraints: Integer, Real,
    Options...), so a model is built from values of the declared types."""
    parsed = {}
    for key, constraint in constraints.items():
        if key not in meta:
            raise ModelFormatError(f"the {owner} model's manifest has no meta value {key!r}")
        try:
            parsed[key] = constraint.parse(meta[key])
        except (ValueError, TypeError, OverflowError):
            raise ModelFormatError(f"the {owner} model's meta value {key}={shown(json.dumps(meta[key])[:60])} is not "
                                   f"{constraint.describe()}") from None
    return parsed
