"""Every content type the server speaks: a decoder or encoder per type of ``data.media``'s registry.

Decoders turn a request body into a float32 matrix (numpy, or CSR for sparse
input). Encoders turn the model's outputs (name -> array with one row per
record) into a response body. The server only looks media types up here.
Client mistakes raise ``ClientError`` with the HTTP status and a message
naming what is wrong and where.
"""

from __future__ import annotations

import io
import json
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .. import npy
from ..data import media
from ..data.limits import MAX_FEATURES
from ..data.media import CSV, JSON, JSONLINES, LIBSVM, NPY
from ..data.media import RECORDIO_PROTOBUF as PROTOBUF
from ..errors import DataError


class ClientError(Exception):
    """A request the server cannot serve, as the client should hear it."""

    def __init__(self, status: int, kind: str, message: str):
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


def bad_request(message: str) -> ClientError:
    return ClientError(400, "bad_request", message)


# ----------------------------------------------------------------------------- decoders


def _csv(body: bytes, kind) -> np.ndarray:
    from ..data.csv_codec import parse_rows

    text = body.rstrip(b"\r\n")
    if b"\n\n" in text or b"\n\r\n" in text:
        line = text.replace(b"\r\n", b"\n").split(b"\n").index(b"") + 1
        raise bad_request(f"line {line} of the CSV body is empty: one record per line, no blank lines")
    if len(text) < 2048 and b"\n" not in text:  # one small row: skip numpy's parser set-up
        try:
            return np.array([[float(v) for v in text.split(b",")]], dtype=np.float32)
        except ValueError:
            pass  # parse_rows names the bad column
    try:
        return parse_rows(text, None, "the CSV body")
    except DataError as exc:
        raise bad_request(str(exc)) from None


def _instance_row(instance, where: str):
    """A JSON instance in any of the built-in forms -> a list of values, or (keys, values, width) if sparse."""
    if isinstance(instance, list):
        return instance
    if not isinstance(instance, dict):
        raise bad_request(f"{where} must be an object with 'features' or 'data', or a list of numbers")
    if "features" in instance:
        return instance["features"]
    data = instance.get("data")
    features = data.get("features") if isinstance(data, dict) else None
    if not isinstance(features, dict) or "values" not in features:
        raise bad_request(f"{where} has neither 'features' nor 'data': {{'features': {{'values': ...}}}}")
    if "keys" not in features:
        return features["values"]
    keys, values, shape = features["keys"], features["values"], features.get("shape")
    if not (isinstance(keys, list) and isinstance(values, list) and len(keys) == len(values)):
        raise bad_request(f"{where}: sparse 'keys' and 'values' must be lists of the same length")
    if not (isinstance(shape, list) and len(shape) == 1 and isinstance(shape[0], int) and 0 < shape[0] <= MAX_FEATURES):
        raise bad_request(f"{where}: a sparse instance needs 'shape': [number of features], at most {MAX_FEATURES:,}")
    return (keys, values, shape[0])


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _floats(values: list, what: str) -> np.ndarray:
    """JSON numbers as float32; integers too wide even for float64 are the client's mistake, not an OverflowError."""
    try:
        return np.array(values, dtype=np.float64).astype(np.float32)
    except OverflowError:
        raise bad_request(f"{what} holds an integer beyond the range of floating point numbers") from None


def _rows_to_matrix(rows: list, what: str):
    """Dense rows (lists) and sparse rows ((keys, values, width)) -> float32 array or CSR matrix."""
    if not rows:
        raise bad_request(f"{what} holds no instances")
    for i, r in enumerate(rows):
        if not isinstance(r, (list, tuple)):
            raise bad_request(f"{what}: instance {i} is {type(r).__name__}, not a list of numbers")
    if not any(isinstance(r, tuple) for r in rows):
        width = len(rows[0])
        for i, r in enumerate(rows):
            if len(r) != width or width == 0:
                raise bad_request(f"{what}: instance {i} has {len(r)} values, instance 0 has {width}; every instance needs the same number of features")
        try:
            array = np.array(rows)
        except (TypeError, ValueError):
            array = None  # nested lists of uneven depth: the scan below names the value
        if array is not None and array.dtype.kind in "iuf" and array.ndim == 2:
            return array.astype(np.float32)
        for i, r in enumerate(rows):
            for j, v in enumerate(r):
                if not _number(v):
                    raise bad_request(f"{what}: instance {i}, feature {j}: {_shown_json(v)} is not a number")
        return _floats(rows, what)  # integers beyond 64 bits
    import scipy.sparse as sp

    width = max(r[2] if isinstance(r, tuple) else len(r) for r in rows)
    indptr, indices, values = [0], [], []
    for i, r in enumerate(rows):
        keys, vals = (r[0], r[1]) if isinstance(r, tuple) else (list(range(len(r))), r)
        limit = r[2] if isinstance(r, tuple) else len(r)
        for k in keys:
            if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k < limit:
                raise bad_request(f"{what}: instance {i}: key {_shown_json(k)} is not an index in [0, {limit})")
        for v in vals:
            if not _number(v):
                raise bad_request(f"{what}: instance {i}: {_shown_json(v)} is not a number")
        indices += keys
        values += vals
        indptr.append(len(indices))
    matrix = sp.csr_matrix((_floats(values, what), np.array(indices, np.int64), np.array(indptr)), shape=(len(rows), width))
    matrix.sum_duplicates()
    return matrix


def _shown_json(v) -> str:
    """A value from the request, short, for an error message (it may be a huge number or a deep structure)."""
    try:
        text = json.dumps(v)
    except (ValueError, RecursionError):
        text = type(v).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _load_json(text: bytes, where: str):
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad_request(f"{where} is not valid JSON: {exc}") from None
    except ValueError:  # Python's guard against quadratic int parsing
        raise bad_request(f"{where} holds an integer of more than {sys.get_int_max_str_digits()} digits") from None
    except RecursionError:
        raise bad_request(f"{where} nests arrays or objects too deeply (an instance is a list of numbers)") from None


def _json(body: bytes, kind):
    doc = _load_json(body, "the JSON body")
    if isinstance(doc, dict) and "instances" in doc:
        instances = doc["instances"]
        if not isinstance(instances, list):
            raise bad_request("'instances' must be a list")
    elif isinstance(doc, dict):
        instances = [doc]  # one instance object
    elif isinstance(doc, list) and doc and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in doc):
        instances = [doc]  # one row
    elif isinstance(doc, list):
        instances = doc  # rows (the SDK's JSONSerializer sends a 2-D array as a list of lists)
    else:
        raise bad_request('the JSON body must be {"instances": [...]}, an instance object, or a list of rows')
    return _rows_to_matrix([_instance_row(x, f"instance {i}") for i, x in enumerate(instances)], "the JSON body")


def _jsonlines(body: bytes, kind):
    lines = body.rstrip(b"\r\n").split(b"\n")
    rows = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            raise bad_request(f"line {i} of the JSON Lines body is empty: one instance per line")
        rows.append(_instance_row(_load_json(line, f"line {i} of the JSON Lines body"), f"line {i}"))
    return _rows_to_matrix(rows, "the JSON Lines body")


def _protobuf(body: bytes, kind):
    from ..data.blocks import concat
    from ..data.protobuf_codec import decode_bytes

    try:
        blocks = decode_bytes(body, "the RecordIO-protobuf body")
    except DataError as exc:
        raise bad_request(str(exc)) from None
    if not blocks:
        raise bad_request("the RecordIO-protobuf body holds no records")
    first = 0
    for block in blocks:
        if block.n_features != blocks[0].n_features:
            raise bad_request(f"record {first} of the RecordIO-protobuf body has {block.n_features} features, "
                              f"the records before it have {blocks[0].n_features}")
        first += len(block)
    return concat(blocks).X


def _libsvm(body: bytes, kind):
    """One record per line, ``index:value`` items; a leading label, as training lines have, is ignored."""
    from ..data.libsvm_codec import parse_lines

    try:
        return parse_lines(body, "the libsvm body", labelled=False, blank_lines=False)[0]
    except DataError as exc:
        raise bad_request(str(exc)) from None


def _npy(body: bytes, kind) -> np.ndarray:
    try:
        array = npy.read(io.BytesIO(body), len(body))
    except npy.NpyError as exc:
        raise bad_request(f"the body is not a .npy array this server reads: {exc}") from None
    if array.ndim not in (1, 2) or array.size == 0:
        raise bad_request(f"the .npy array must be 1-D (one record) or 2-D (records x features), not empty; got shape {array.shape}")
    return np.atleast_2d(array).astype(np.float32)


DECODERS: dict[str, Callable] = {CSV: _csv, JSON: _json, JSONLINES: _jsonlines, PROTOBUF: _protobuf, NPY: _npy, LIBSVM: _libsvm}


def decode(content_type: str | None, body: bytes):
    """The request's records as a float32 matrix (dense or CSR)."""
    kind = media.parse(content_type or CSV)
    decoder = DECODERS.get(kind.essence)
    if decoder is None:
        raise ClientError(415, "unsupported_media_type",
                          f"Content-Type {content_type!r} is not supported; use one of: {', '.join(DECODERS)}")
    if not body.strip():
        raise bad_request("the request body is empty")
    X = decoder(body, kind)
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise bad_request(f"the request body holds no records (shape {X.shape[0]} x {X.shape[1]})")
    return X


# ----------------------------------------------------------------------------- encoders


def _column(a: np.ndarray, integer: bool) -> list:
    """An output as plain Python values: integers where asked for and exact, null for non-finite values."""
    if integer and a.ndim == 1 and np.all(np.mod(a, 1) == 0):
        return a.astype(np.int64).tolist()
    values = a.astype(np.float64)
    if np.isfinite(values).all():
        return values.tolist()
    return np.where(np.isfinite(values), values, None).tolist()


def records(outputs: dict, integer: tuple = ()) -> list[dict]:
    """One dict per record: scalars for 1-D outputs, lists for 2-D ones."""
    names = list(outputs)
    columns = [_column(np.asarray(outputs[name]), name in integer) for name in names]
    return [dict(zip(names, values)) for values in zip(*columns)]


def _enc_json(outputs, integer) -> bytes:
    return json.dumps({"predictions": records(outputs, integer)}, separators=(",", ":")).encode()


def _enc_jsonlines(outputs, integer) -> bytes:
    return "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records(outputs, integer)).encode()


_NUMBER = "{:.9g}".format


def _enc_csv(outputs, integer) -> bytes:
    """One line per record: the outputs in order, 2-D outputs spread over several columns."""
    columns = [np.asarray(a, dtype=np.float64).reshape(len(a), -1) for a in outputs.values()]
    table = np.hstack(columns)
    if len(table) <= 100:  # a few rows: plain formatting beats savetxt's set-up
        return "".join(",".join(map(_NUMBER, row)) + "\n" for row in table.tolist()).encode()
    out = io.StringIO()
    np.savetxt(out, table, delimiter=",", fmt="%.9g")
    return out.getvalue().encode()


def _enc_protobuf(outputs, integer) -> bytes:
    """One Record per record, each output a float32 tensor in the ``label`` map (as the built-ins answer)."""
    from ..data import recordio
    from ..data.byoa_record_pb2 import Record

    arrays = {name: np.asarray(a, dtype=np.float32) for name, a in outputs.items()}
    n = len(next(iter(arrays.values())))
    out = []
    for i in range(n):
        record = Record()
        for name, a in arrays.items():
            record.label[name].float32_tensor.values.extend(np.atleast_1d(a[i]).tolist())
        out.append(recordio.encode(record.SerializeToString()))
    return b"".join(out)


ENCODERS: dict[str, Callable] = {JSON: _enc_json, JSONLINES: _enc_jsonlines, CSV: _enc_csv, PROTOBUF: _enc_protobuf}


@dataclass(frozen=True)
class Accepted:
    media_type: str
    params: dict

    def encode(self, outputs: dict, integer: tuple = ()) -> bytes:
        return ENCODERS[self.media_type](outputs, integer)


def negotiate(accept: str | None, default: str) -> Accepted:
    """The response type: the client's most preferred supported type; ``*/*`` or none -> ``default``."""
    if not accept or not accept.strip():
        accept = "*/*"
    choices = []
    for i, part in enumerate(accept.split(",")):
        kind = media.parse(part)
        try:
            q = float(kind.params.pop("q", "1"))
        except ValueError:
            q = 1.0
        choices.append((-q, i, kind))
    for _, _, kind in sorted(choices, key=lambda c: c[:2]):
        essence = kind.essence
        if essence in ("*/*", "application/*", "text/*"):
            wanted = media.parse(default).essence
            if essence == "*/*" or wanted.startswith(essence[:-1]):
                return Accepted(wanted, kind.params)
        if essence in ENCODERS:
            return Accepted(essence, kind.params)
    raise ClientError(406, "not_acceptable", f"Accept {accept!r} names no supported response type; use one of: {', '.join(ENCODERS)}")
