"""The job's channels from ``inputdataconfig.json``, and which of them plays train, validation and test.

Used by every partition of a job (one per host), so every host reads its data alike.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .channels import Channel, FeatureCheck, open_channels
from ..errors import ConfigError
from ..paths import Paths

TRAIN_CHANNELS = ("train", "training")
ROLES = ("train", "validation", "test")


@dataclass(frozen=True)
class ChannelRule:
    """A channel an algorithm reads, declared in its file: what a CreateAlgorithm listing says of it, and what
    ``read_inputs`` requires. ``name`` is one of ``ROLES`` (``training`` is accepted for ``train``)."""

    name: str
    description: str
    required: bool = False


def read_inputs(paths: Paths, check: FeatureCheck, rules: list[ChannelRule]) -> tuple[dict[str, Channel], dict, list[str]]:
    """(channels by name, role -> channel or None, names of channels no rule reads); ``check`` judges every
    channel's record width."""
    data_config = paths.read_json("inputdataconfig.json", required=False, default={}) or {}
    if not isinstance(data_config, dict):
        raise ConfigError("inputdataconfig.json must hold a JSON object of channels")
    timeout = float(os.environ.get("TRAIN_PIPE_TIMEOUT", "600"))
    channels = open_channels(data_config, paths.data, timeout)
    train_name = next((n for n in TRAIN_CHANNELS if n in channels), "train")
    named = {**{n: n for n in channels}, "train": train_name}
    for rule in rules:
        if rule.required and named.get(rule.name) not in channels:
            also = " (or 'training')" if rule.name == "train" else ""
            raise ConfigError(f"no {rule.name} channel: inputdataconfig.json must have a '{rule.name}'{also} channel "
                              f"({rule.description}); got {sorted(channels) or 'none'}")
    read = {named[r.name] for r in rules if r.name in named}
    roles = {role: channels[named[role]] if role in named and named[role] in read else None for role in ROLES}
    unused = sorted(set(channels) - read)
    for channel in channels.values():
        channel.feature_check = check
    return channels, roles, unused
