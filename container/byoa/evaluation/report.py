"""``evaluation.json`` and the short human summary that ends the training log."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

from .. import __version__
from .baseline import lift
from ..stats.metrics import CHANNELS, scalars

REPORT = "evaluation.json"


def build(algorithm: str, model, plan: dict, results: dict, scores, kfold: dict | None, timings: dict) -> dict:
    """``plan``: the data plan's ``info`` and ``warnings``."""
    baselines = {}
    for role, result in results.items():
        base = scores.baseline(role, model.positive_class)
        if base:
            baselines[role] = {**base, **lift(model.task, result, base)}
    headline_role = next(r for r in ("test", "validation", "train") if r in results)
    threshold = None
    if model.task == "binary":
        threshold = dict(getattr(model, "selection", {}) or {})
        for role in ("test", "train"):  # what the chosen threshold gives on data it was not chosen on
            if role in results:
                threshold.update({f"{role}_{k}": results[role][k] for k in ("precision", "recall")})
    return {
        "algorithm": algorithm,
        "task": model.task,
        "byoa_version": __version__,
        "positive_class": model.positive_class,
        "split": {**plan["info"], "sizes": scores.sizes(), "scored": scores.scored()},
        "metrics": results,
        "threshold": threshold,
        "model_selection": getattr(model, "model_selection", None) or None,
        "baseline": baselines,
        "headline_channel": headline_role,
        "k_fold": kfold,
        "warnings": plan["warnings"] + [b["summary"] for r, b in baselines.items() if r == headline_role and not b.get("beats_baseline", True)],
        "timings_seconds": timings,
    }


def write(folder: Path, report: dict) -> Path:
    """Atomically: a reader never sees half a report."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".evaluation-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(_plain(report), f, indent=2, allow_nan=False)
    target = folder / REPORT
    os.replace(tmp, target)
    return target


def _plain(value):
    """JSON-safe: numpy scalars to Python, NaN and infinities to null."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def confusion_table(result: dict) -> list[list]:
    """(row labels, column labels, counts) rows for the confusion matrix of a classifier result, or []."""
    if "confusion" in result:
        c = result["confusion"]
        pos, neg = _name(c["positive_class"]), _name(c["negative_class"])
        return [["", f"predicted {pos}", f"predicted {neg}"], [f"actual {pos}", c["tp"], c["fn"]], [f"actual {neg}", c["fp"], c["tn"]]]
    if "confusion_matrix" in result:
        names = [_name(c) for c in result["classes"]]
        used = [i for i, row in enumerate(result["confusion_matrix"]) if names[i] != "other" or sum(row) or
                sum(r[i] for r in result["confusion_matrix"])]
        rows = [[""] + [f"predicted {names[j]}" for j in used]]
        rows += [[f"actual {names[i]}"] + [result["confusion_matrix"][i][j] for j in used] for i in used]
        return rows
    return []


def _name(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def summary(report: dict) -> list[str]:
    """A few lines a person reads at the end of the log."""
    role = report["headline_channel"]
    result = report["metrics"][role]
    sizes = report["split"]["sizes"]
    lines = [
        f"===== evaluation summary: {report['algorithm']} ({report['task']}) =====",
        f"data: {', '.join(f'{r} {sizes[r]:,}' for r in CHANNELS if r in sizes)} records; test = {report['split']['test']}; "
        f"validation = {report['split']['validation']}",
        report["split"]["model"],
    ]
    sampled = {r: n for r, n in report["split"]["scored"].items() if n < sizes.get(r, n)}
    if sampled:
        lines.append("scored a uniform sample (TRAIN_EVAL_BUFFER_MB): " + ", ".join(f"{r} {n:,} of {sizes[r]:,}" for r, n in sampled.items()))
    chosen = report.get("model_selection")
    if chosen and chosen.get("num_models", 1) > 1:
        settings = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in chosen["settings"].items())
        lines.append(f"model {chosen['chosen'] + 1} of {chosen['num_models']} kept ({settings}), judged by {chosen['judged_by']}")
    if report.get("threshold"):
        t = report["threshold"]
        lines.append(f"decision threshold {t.get('threshold', 0.5):.4f}, chosen on validation data by {t.get('criterion')}"
                     + (f" ({t['note']})" if t.get("note") else ""))
    table = confusion_table(result)
    if table:
        lines.append(f"{role} confusion matrix:")
        width = max(len(str(cell)) for row in table for cell in row) + 2
        lines += ["  " + "".join(str(cell).rjust(width) for cell in row) for row in table]
    lines.append(f"{role}: " + ", ".join(f"{k} {v:.4g}" for k, v in scalars(result).items()))
    base = report["baseline"].get(role)
    if base and "summary" in base:
        lines.append(f"{role} {base['summary']}; baseline: {base['heuristic']}")
        if not base["beats_baseline"]:
            lines.append(f"WARNING: the model does not beat its baseline on {role} data")
    kfold = report.get("k_fold")
    if kfold:
        spread = f"{kfold['metric']} mean {kfold['mean']:.4f} ± {kfold['std']:.4f}; " if "mean" in kfold else ""
        lines.append(f"{kfold['k']}-fold ({kfold['scheme']}): {spread}verdict: {kfold['verdict']}")
    lines += [f"WARNING: {w}" for w in report["warnings"]]
    return lines
