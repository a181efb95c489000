"""The job's data plan: which channel or slice plays train, validation and test.

Decided once per host, before fitting, from the channels given and the split
hyperparameters; every pass over the training channel then cuts its blocks by the
same roles, so the fit, k-fold and the evaluation see the same records in the same roles.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field, replace
from typing import Iterator

import numpy as np

from ..errors import ConfigError, DataError
from ..stats.split import (
    TEST,
    TRAIN,
    VALIDATION,
    HashPositions,
    IndexPositions,
    Split,
    fold_roles,
    holdout_roles,
    label_order_warning,
    ordered_positions,
)
from ..data.blocks import Block
from .views import MemoryChannel

log = logging.getLogger("byoa.train")


@dataclass
class Plan:
    source: object  # the training channel (or it, read into memory)
    split: Split | None  # None: nothing is held out of the training channel
    validation: object | None  # the 'validation' channel
    test: object | None  # the 'test' channel
    test_fraction: float = 0.0
    validation_fraction: float = 0.0
    strategy: str = "random"
    info: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)

    def role_blocks(self, wanted=(TRAIN, VALIDATION, TEST)) -> Iterator[tuple[int, Block, np.ndarray | None]]:
        """One pass over the training channel, each block cut by role (only the ``wanted`` ones): (role, records,
        and the records' split hashes when roles come from hashes, else None)."""
        first = 0
        for block in self.source.next_pass():
            if self.split is None:
                yield TRAIN, block, None
                continue
            roles, h = self.split.roles(block, first)
            first += len(block)
            for role in wanted:
                mask = roles == role
                if mask.all():
                    yield role, block, h
                elif mask.any():
                    yield role, block.take(mask), None if h is None else h[mask]

    def fold(self, index: int, k: int) -> "Plan":
        """The plan of fold ``index`` of k: the test part of this plan is left out altogether."""
        roles = functools.partial(fold_roles, test=self.test_fraction, validation=self.validation_fraction if self.validation is None else 0.0,
                                  k=k, fold=index, forward=self.strategy == "sequential")
        return replace(self, split=Split(self.split.positions, roles), test=None)


def _scan_labels(channel) -> np.ndarray:
    """One pass reading only what a File-mode split needs: the label column (NaN where none)."""
    parts = [b.y if b.y is not None else np.full(len(b), np.nan, np.float32) for b in channel.next_pass()]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def make_plan(hp: dict, algo_cls, train, validation, test) -> Plan:
    strategy, seed, k = hp["split_strategy"], hp["seed"], hp["k_fold"]
    pipe = train.spec.mode == "Pipe"
    test_fraction = 0.0 if test is not None else hp["test_fraction"]
    if pipe and k:
        raise ConfigError(
            f"k_fold={k} needs File mode: channel '{train.name}' is in Pipe mode, a stream that cannot be replayed per fold; "
            "use TrainingInputMode=File or k_fold=0"
        )
    may_split = test_fraction or k or (validation is None and algo_cls.uses_validation(hp))
    if pipe and strategy != "random" and may_split:
        raise ConfigError(
            f"split_strategy={strategy} needs File mode: in Pipe mode records arrive as a stream (reshuffled each epoch), "
            "so roles come from a hash of each record; use split_strategy=random or TrainingInputMode=File"
        )
    if strategy == "stratified" and algo_cls.supervision(hp) != "classifier":
        raise ConfigError(f"split_strategy=stratified keeps class proportions, so it needs a classifier; {algo_cls.name} "
                          f"here is {algo_cls.supervision(hp)}: use random or sequential")

    source, labels = train, None
    if algo_cls.in_memory:
        block = train.read_all()
        if block is None:
            raise DataError(f"channel '{train.name}' has no records")
        source = MemoryChannel(train.name, block, train.bytes_last_pass, train.spec)
        labels = block.y if block.y is not None else np.full(len(block), np.nan, np.float32)
    validation_fraction = hp["threshold_fraction"] if validation is None and algo_cls.uses_validation(hp, labels) else 0.0
    splitting = bool(test_fraction or validation_fraction or k)
    if labels is None and splitting and strategy != "random" and not pipe:
        log.info("split_strategy=%s: reading channel '%s' once for its labels and record count", strategy, train.name)
        labels = _scan_labels(train)

    warnings = []
    if strategy == "sequential" and labels is not None and splitting:
        why = label_order_warning(labels)
        if why:
            warnings.append(f"split_strategy=sequential on '{train.name}': {why}; the held-out rows then come from a population "
                            "the model never saw, so test figures will look worse than the model is (use random or stratified "
                            "unless rows are in time order)")
    exact = labels is not None  # in memory, or a File-mode scan: the order of records is known
    positions = IndexPositions(ordered_positions(labels, strategy, seed)) if exact else HashPositions(seed)
    split = Split(positions, functools.partial(holdout_roles, test=test_fraction, validation=validation_fraction)) if splitting else None

    how = "exact shares (file order known)" if exact else "seeded hash of each record's values (decided on the fly)"
    info = {
        "strategy": strategy,
        "seed": seed,
        "assignment": how if splitting else "none",
        "test": f"channel '{test.name}'" if test is not None else f"{test_fraction:.0%} of '{train.name}', held out before fitting",
        "validation": (
            f"channel '{validation.name}'" if validation is not None
            else f"{validation_fraction:.0%} of the training part of '{train.name}'" if validation_fraction
            else "none (nothing is chosen on validation data)"
        ),
        "model": "the shipped model is the one fitted on the training part only and evaluated on test; it is not refitted on all data",
    }
    return Plan(source, split, validation, test, test_fraction, validation_fraction, strategy, info, warnings)
