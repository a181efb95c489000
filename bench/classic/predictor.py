"""The baseline: a server built the way the classic scikit_bring_your_own example does it.

Flask, the model unpickled lazily on the first /ping, pandas.read_csv per request,
predictions written back with pandas. Benchmark use only: it unpickles a model
this benchmark itself wrote; our own server never unpickles anything.
"""

import io
import os
import pickle

import flask
import pandas as pd

MODEL_PATH = os.environ["CLASSIC_MODEL"]


class ScoringService:
    model = None

    @classmethod
    def get_model(cls):
        if cls.model is None:
            with open(MODEL_PATH, "rb") as inp:
                cls.model = pickle.load(inp)
        return cls.model

    @classmethod
    def predict(cls, data):
        return cls.get_model().predict(data)


app = flask.Flask(__name__)


@app.route("/ping", methods=["GET"])
def ping():
    health = ScoringService.get_model() is not None
    return flask.Response(response="\n", status=200 if health else 404, mimetype="application/json")


@app.route("/invocations", methods=["POST"])
def transformation():
    if flask.request.content_type == "text/csv":
        data = pd.read_csv(io.StringIO(flask.request.data.decode("utf-8")), header=None)
    else:
        return flask.Response(response="This predictor only supports CSV data", status=415, mimetype="text/plain")
    predictions = ScoringService.predict(data.values)
    out = io.StringIO()
    pd.DataFrame({"results": predictions}).to_csv(out, header=False, index=False)
    return flask.Response(response=out.getvalue(), status=200, mimetype="text/csv")
