"""The ceiling of the stack: a Flask app that does nothing, behind the same nginx and gunicorn."""

import flask

app = flask.Flask(__name__)


@app.route("/ping", methods=["GET"])
def ping():
    return flask.Response(response="\n", status=200)


@app.route("/invocations", methods=["POST"])
def invocations():
    flask.request.get_data()
    return flask.Response(response="0\n", status=200, mimetype="text/csv")
