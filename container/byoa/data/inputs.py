"""The job's channels from ``inputdataconfig.json``, and which of them plays train, validation and test.

Used by every partition of a job (one per host), so every host reads its data alike.
"""

from __future__ import annotations

import os

from .channels import Channel, FeatureCheck, open_channels
from ..errors import ConfigError
from ..paths import Paths

TRAIN_CHANNELS = ("train", "training")


def read_inputs(paths: Paths, check: FeatureCheck) -> tuple[dict[str, Channel], dict, list[str]]:
    """(channels by name, role -> channel or None, names of channels no role uses); ``check`` judges every
    channel's record width."""
    data_config = paths.read_json("inputdataconfig.json", required=False, default={}) or {}
    if not isinstance(data_config, dict):
        raise ConfigError("inputdataconfig.json must hold a JSON object of channels")
    timeout = float(os.environ.get("TRAIN_PIPE_TIMEOUT", "600"))
    channels = open_channels(data_config, paths.data, timeout)
    train_name = next((n for n in TRAIN_CHANNELS if n in channels), None)
    if train_name is None:
        raise ConfigError(
            f"no training channel: inputdataconfig.json must have a 'train' (or 'training') channel; got {sorted(channels) or 'none'}"
        )
    roles = {"train": channels[train_name], "validation": channels.get("validation"), "test": channels.get("test")}
    unused = sorted(set(channels) - {train_name, "validation", "test"})
    for channel in channels.values():
        channel.feature_check = check
    return channels, roles, unused
