"""The Flask application: ``create_app(model_dir)`` loads the model once and serves it.

Routes: ``GET /ping``, ``POST /invocations``, ``GET /execution-parameters``.
Every error is JSON ``{"error": kind, "message": ...}``; client mistakes are
4xx, bugs are 500 with the request id that the log line also carries.
"""

from __future__ import annotations

import json
import logging
import os
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from ..data.blocks import first_non_finite, fit_width
from ..errors import DataError, shown
from . import codecs
from .codecs import ClientError

log = logging.getLogger("byoa.serve")


@dataclass(frozen=True)
class Settings:
    """What the server's behaviour depends on, from the environment (SageMaker's variables)."""

    workers: int
    timeout: int
    batch: bool
    max_payload_mb: int
    default_accept: str

    @classmethod
    def from_env(cls, env=os.environ) -> "Settings":
        from ..cpus import available_cpus

        batch = env.get("SAGEMAKER_BATCH", "false").strip().lower() == "true"
        workers = _int(env, ("SAGEMAKER_MODEL_SERVER_WORKERS", "MODEL_SERVER_WORKERS"), available_cpus(), 1)
        timeout = _int(env, ("SAGEMAKER_MODEL_SERVER_TIMEOUT", "MODEL_SERVER_TIMEOUT"), 600 if batch else 60, 1)
        payload = _int(env, ("SAGEMAKER_MAX_PAYLOAD_IN_MB",), 6, 1)
        if payload > (100 if batch else 6):
            raise ValueError(f"SAGEMAKER_MAX_PAYLOAD_IN_MB={payload} is above SageMaker's limit ({100 if batch else 6} MB"
                             f"{' in batch transform' if batch else ' for real-time endpoints; batch transform allows 100'})")
        accept = env.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", codecs.JSON)
        try:
            codecs.negotiate(accept, codecs.JSON)  # fails now, not on the first request
        except ClientError:
            raise ValueError(f"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT='{shown(accept)}' is not a type this server answers in; "
                             f"use one of: {', '.join(codecs.ENCODERS)}") from None
        return cls(workers, timeout, batch, payload, accept)


def _int(env, names, default: int, low: int) -> int:
    for name in names:
        raw = env.get(name, "").strip()
        if raw:
            try:
                value = int(raw)
            except ValueError:
                raise ValueError(f"{name}={raw!r} is not an integer") from None
            if value < low:
                raise ValueError(f"{name}={value} must be at least {low}")
            return value
    return default


def load_model(model_dir: Path):
    """(model, None) or (None, the reason it cannot be served)."""
    from ..algorithms import model_from_artifacts
    from ..model_io import ModelFormatError, load

    try:
        manifest, arrays = load(model_dir)
        return model_from_artifacts(manifest["algorithm"], arrays, manifest["meta"]), None
    except ModelFormatError as exc:
        return None, str(exc)
    except Exception as exc:  # a model this image wrote but cannot rebuild: say so, keep serving the reason
        log.exception("the model in %s could not be loaded", model_dir)
        return None, f"the model in {model_dir} could not be loaded: {type(exc).__name__}: {exc}"


def error(status: int, kind: str, message: str, request_id: str | None = None) -> Response:
    body = {"error": kind, "message": message}
    if request_id:
        body["request_id"] = request_id
    return Response(json.dumps(body), status=status, mimetype="application/json")


def check_records(X, model) -> object:
    """The records the model can take: the right width, finite values. Sparse rows may omit trailing zeros."""
    try:
        X = fit_width(X, model.n_features)
    except DataError as exc:
        raise codecs.bad_request(str(exc)) from None
    bad = first_non_finite(X)
    if bad is not None:
        row, col, value = bad
        raise codecs.bad_request(f"record {row}, feature {col} is {value}: the model needs finite numbers")
    return X


def create_app(model_dir: Path | str, settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    model, reason = load_model(Path(model_dir))
    if model is None:
        log.error("serving without a model: %s", reason)
    else:
        log.info("model loaded: %s (%d features) from %s", model.name, model.n_features, model_dir)
    app = Flask("byoa")
    app.config["BYOA_MODEL"] = model  # gunicorn's post_worker_init warms it up in each worker

    def request_id() -> str:
        return request.headers.get("X-Request-Id") or request.headers.get("X-Amzn-RequestId") or uuid.uuid4().hex

    @app.get("/ping")
    def ping():
        if model is None:
            return error(500, "model_not_loaded", reason)
        return Response(b"", status=200)

    @app.get("/execution-parameters")
    def execution_parameters():
        body = {"MaxConcurrentTransforms": settings.workers, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": settings.max_payload_mb}
        return Response(json.dumps(body), mimetype="application/json")

    @app.post("/invocations")
    def invocations():
        if model is None:
            return error(500, "model_not_loaded", reason)
        accepted = codecs.negotiate(request.headers.get("Accept"), settings.default_accept)
        X = check_records(codecs.decode(request.headers.get("Content-Type"), request.get_data(cache=False)), model)
        outputs = model.predict(X)
        if accepted.params.get("verbose", "false").lower() != "true":
            outputs = {k: v for k, v in outputs.items() if k not in model.verbose_outputs}
        if accepted.media_type == codecs.CSV and model.csv_outputs is not None:
            outputs = {k: outputs[k] for k in model.csv_outputs}
        return Response(accepted.encode(outputs, model.integer_outputs), mimetype=accepted.media_type)

    @app.errorhandler(ClientError)
    def client_error(exc: ClientError):
        return error(exc.status, exc.kind, exc.message)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        kinds = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
        message = (f"no route {request.method} {request.path}; routes: GET /ping, POST /invocations, GET /execution-parameters"
                   if exc.code in (404, 405) else exc.description)
        return error(exc.code or 500, kinds.get(exc.code, "http_error"), message)

    @app.errorhandler(Exception)
    def internal_error(exc: Exception):
        rid = request_id()
        log.error("request %s failed: %s\n%s", rid, exc, traceback.format_exc())
        return error(500, "internal_error", f"the server failed on this request (a bug): {type(exc).__name__}; request id {rid}", rid)

    return app
