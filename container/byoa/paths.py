"""The /opt/ml layout, rooted at SAGEMAKER_BASE_DIR so it runs outside a container too."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError


@dataclass(frozen=True)
class Paths:
    base: Path

    @classmethod
    def from_env(cls) -> "Paths":
        return cls(Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")))

    @property
    def config(self) -> Path:
        return self.base / "input" / "config"

    @property
    def data(self) -> Path:
        return self.base / "input" / "data"

    @property
    def model(self) -> Path:
        return self.base / "model"

    @property
    def output(self) -> Path:
        return self.base / "output"

    @property
    def failure(self) -> Path:
        return self.output / "failure"

    @property
    def output_data(self) -> Path:
        return self.output / "data"

    @property
    def default_checkpoints(self) -> Path:
        return self.base / "checkpoints"

    def read_json(self, name: str, required: bool = True, default=None):
        path = self.config / name
        if not path.exists():
            if required:
                raise ConfigError(f"missing config file {path}")
            return default
        try:
            return json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path} is not valid JSON: {exc}") from None
