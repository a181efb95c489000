"""Link functions: what turns a model's raw scores into probabilities, one definition for every algorithm."""

from __future__ import annotations

import numpy as np


def sigmoid(s):
    """The logistic function, written with tanh so that large scores do not overflow."""
    return 0.5 * (1.0 + np.tanh(0.5 * s))


def softmax(S):
    """Probabilities along the last axis, shifted by the row maximum so that exp does not overflow."""
    S = S - S.max(axis=-1, keepdims=True)
    E = np.exp(S)
    return E / E.sum(axis=-1, keepdims=True)
