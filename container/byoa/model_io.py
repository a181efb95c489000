"""Model artifacts that loading cannot turn into code execution.

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
from pathlib import Path

import numpy as np

from . import __version__
from .errors import UserError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ARRAYS = "model.npz"


class ModelFormatError(UserError):
    """The model directory is missing, damaged, or written by an incompatible image."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
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
            "arrays_sha256": _sha256(npz),
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


def load(folder: Path) -> tuple[dict, dict]:
    """(manifest, arrays) of a model directory; ModelFormatError with the reason if it cannot be read."""
    manifest_path = folder / MANIFEST
    if not manifest_path.exists():
        raise ModelFormatError(f"no model in {folder}: {MANIFEST} is missing")
    try:
        manifest = json.loads(manifest_path.read_text())
    except ValueError as exc:
        raise ModelFormatError(f"{manifest_path} is not valid JSON: {exc}") from None
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFormatError(
            f"model format version {version!r} in {manifest_path} cannot be read by this image "
            f"(version {__version__} reads format {FORMAT_VERSION}); retrain or use a matching image"
        )
    npz = folder / manifest.get("arrays", ARRAYS)
    if not npz.exists() or _sha256(npz) != manifest.get("arrays_sha256"):
        raise ModelFormatError(f"{npz} is missing or does not match its checksum in {MANIFEST}")
    with np.load(npz, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    return manifest, arrays
