"""Pictures of the report, drawn from the report's own numbers (matplotlib, Agg backend).

matplotlib is imported here only, when a classifier's report is drawn. It needs
no display and no network; its cache goes to ``MPLCONFIGDIR``, or to a fresh
temporary folder when that is unset (seeded from ``BYOA_MATPLOTLIB_CACHE``, the
font cache the image builds), so nothing is written outside /opt/ml and the
temp dir, even on a read-only root file system.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from .report import confusion_table


def _pyplot():
    if "MPLCONFIGDIR" not in os.environ:
        folder = tempfile.mkdtemp(prefix="byoa-matplotlib-")
        atexit.register(shutil.rmtree, folder, True)
        prepared = os.environ.get("BYOA_MATPLOTLIB_CACHE")  # the image's font cache, built at image build time
        if prepared and os.path.isdir(prepared):
            shutil.copytree(prepared, folder, dirs_exist_ok=True)
        os.environ["MPLCONFIGDIR"] = folder
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def confusion_figure(result: dict, title: str):
    plt = _pyplot()
    table = confusion_table(result)
    cols = [c.removeprefix("predicted ") for c in table[0][1:]]
    rows = [r[0].removeprefix("actual ") for r in table[1:]]
    counts = [[int(v) for v in r[1:]] for r in table[1:]]
    size = max(4.0, 0.6 * len(cols) + 2.5)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(len(cols)), labels=cols, rotation=45 if len(cols) > 6 else 0)
    ax.set_yticks(range(len(rows)), labels=rows)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("actual class")
    top = max(max(r) for r in counts) if counts else 0
    for i, row in enumerate(counts):
        for j, v in enumerate(row):
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > top / 2 else "black")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def precision_recall_figure(result: dict, title: str, threshold: float | None):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    if "curve" in result:
        c = result["curve"]
        ax.plot(c["recall"], c["precision"], label="precision-recall curve")
        ax.plot([result["recall"]], [result["precision"]], "o", label=f"chosen threshold {threshold:.3f}" if threshold is not None else "operating point")
        ax.set_xlabel(f"recall (positive class {result['confusion']['positive_class']:g})")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.legend(loc="lower left")
    else:
        names = [f"{c:g}" if isinstance(c, float) else str(c) for c in result["classes"]]
        support = result["per_class"]["support"]
        keep = [i for i, n in enumerate(support) if n or names[i] != "other"]
        xs = range(len(keep))
        ax.bar([x - 0.2 for x in xs], [result["per_class"]["precision"][i] for i in keep], width=0.4, label="precision")
        ax.bar([x + 0.2 for x in xs], [result["per_class"]["recall"][i] for i in keep], width=0.4, label="recall")
        ax.set_xticks(list(xs), labels=[names[i] for i in keep])
        ax.set_xlabel("class")
        ax.set_ylim(0, 1.05)
        ax.legend(loc="lower right")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def roc_figure(result: dict, title: str):
    plt = _pyplot()
    c = result["curve"]
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.plot(c["false_positive_rate"], c["recall"], label=f"ROC (AUC {result['roc_auc_score']:.3f})")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="chance")
    ax.plot([1 - result["specificity"]], [result["recall"]], "o", label="operating point")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate (recall)")
    ax.legend(loc="lower right")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def draw(report: dict, folder: Path) -> list[Path]:
    """The pictures of a classifier's report, for its headline channel; returns the files written."""
    role = report["headline_channel"]
    result = report["metrics"][role]
    if not confusion_table(result):
        return []
    plt = _pyplot()
    name = f"{report['algorithm']}, {role} data"
    threshold = (report.get("threshold") or {}).get("threshold")
    figures = {"confusion_matrix.png": confusion_figure(result, f"confusion matrix ({name})"),
               "precision_recall.png": precision_recall_figure(result, f"precision and recall ({name})", threshold)}
    if "curve" in result:
        figures["roc.png"] = roc_figure(result, f"ROC curve ({name})")
    written = []
    for filename, fig in figures.items():
        path = folder / filename
        fig.savefig(path, dpi=100, metadata={"Software": f"byoa {report['byoa_version']}"})
        plt.close(fig)
        written.append(path)
    return written
