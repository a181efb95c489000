#!/usr/bin/env python3
"""Writes the embedded default data (datasets that ship inside scikit-learn) as training channels.

    demo_data.py OUT_DIR

OUT_DIR/breast_cancer/{train,test}.csv and .pbr: a binary classifier (label first, standardized
features, stratified 80/20 split); OUT_DIR/iris/{train,test}.csv and .pbr: multi-class and k-means.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "container"))

from byoa.data.protobuf_codec import encode_rows  # noqa: E402


def write(folder: Path, name: str, X: np.ndarray, y: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    np.savetxt(folder / f"{name}.csv", np.column_stack([y, X]), delimiter=",", fmt="%.9g")
    (folder / f"{name}.pbr").write_bytes(encode_rows(X.astype(np.float32), y.astype(np.float32)))


def main(out: Path) -> None:
    from sklearn.datasets import load_breast_cancer, load_iris
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    for name, loader in (("breast_cancer", load_breast_cancer), ("iris", load_iris)):
        data = loader()
        X = data.data.astype(np.float32)
        if name == "breast_cancer":
            X = StandardScaler().fit_transform(X).astype(np.float32)
            y = (data.target == 0).astype(np.float32)  # positive class: malignant
        else:
            y = data.target.astype(np.float32)
        X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
        write(out / name, "train", X_train, y_train)
        write(out / name, "test", X_test, y_test)
        print(f"{out / name}: {len(X_train)} train + {len(X_test)} test records, {X.shape[1]} features")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "local_test/demo_data"))
