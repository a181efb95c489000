"""The algorithms, by the name the ``algorithm`` hyperparameter (or SAGEMAKER_ALGORITHM) uses."""

from __future__ import annotations

from ..errors import shown
from ..model_io import ModelFormatError
from .base import Algorithm, Model
from .factorization_machines import FactorizationMachinesAlgorithm
from .kmeans import KMeansAlgorithm
from .knn import KNNAlgorithm
from .linear_learner import LinearLearnerAlgorithm
from .pca import PCAAlgorithm
from .trees import DecisionTreeAlgorithm, RandomForestAlgorithm
from .xgb import XGBoostAlgorithm

ALGORITHMS: dict[str, type[Algorithm]] = {
    cls.name: cls
    for cls in (
        KMeansAlgorithm,
        KNNAlgorithm,
        LinearLearnerAlgorithm,
        PCAAlgorithm,
        DecisionTreeAlgorithm,
        RandomForestAlgorithm,
        FactorizationMachinesAlgorithm,
        XGBoostAlgorithm,
    )
}


def model_from_artifacts(algorithm: str, arrays: dict, meta: dict) -> Model:
    if algorithm not in ALGORITHMS:
        raise ModelFormatError(f"model was trained by unknown algorithm {shown(algorithm)!r}")
    return ALGORITHMS[algorithm].model_class.checked(arrays, meta, algorithm)
