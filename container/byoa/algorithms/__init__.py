"""The algorithms, by the name the ``algorithm`` hyperparameter (or SAGEMAKER_ALGORITHM) uses."""

from __future__ import annotations

from ..model_io import ModelFormatError
from .base import Algorithm, Model
from .kmeans import KMeansAlgorithm, KMeansModel
from .knn import KNNAlgorithm, KNNModel
from .linear_learner import LinearLearnerAlgorithm, LinearModel
from .pca import PCAAlgorithm, PCAModel
from .trees import DecisionTreeAlgorithm, RandomForestAlgorithm, TreeEnsembleModel

ALGORITHMS: dict[str, type[Algorithm]] = {
    cls.name: cls
    for cls in (
        KMeansAlgorithm,
        KNNAlgorithm,
        LinearLearnerAlgorithm,
        PCAAlgorithm,
        DecisionTreeAlgorithm,
        RandomForestAlgorithm,
    )
}


def model_from_artifacts(algorithm: str, arrays: dict, meta: dict) -> Model:
    if algorithm not in ALGORITHMS:
        raise ModelFormatError(f"model was trained by unknown algorithm {algorithm!r}")
    return ALGORITHMS[algorithm].model_class.from_artifacts(arrays, meta)
