"""Serving benchmarks (issue 4): our container/serve against a classic-example server, back to back.

Both run behind real nginx and gunicorn (2 sync workers) on loopback, serve the same
trained scikit-learn forest / tree (ours from flat arrays, the baseline from a pickle),
and take the same load from wrk. A no-op Flask app on the same stack gives the ceiling.

    python bench/serve.py [--quick] [part ...]     (--quick: 5 s wrk runs, 15 s soak)
    parts: cold_start one_row_load big_request soak (default: all)
"""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "container"))

from byoa.algorithms.trees import TreeEnsembleModel, _flatten  # noqa: E402
from byoa.model_io import ArtifactWriter  # noqa: E402

QUICK = "--quick" in sys.argv
DURATION = 5 if QUICK else 15
SOAK = 15 if QUICK else 60
FEATURES = 10
PYTHON = sys.executable


def train_models(work: Path) -> dict:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(20000, FEATURES)).astype(np.float32)
    y = ((X[:, 0] + X[:, 1] * X[:, 2] + 0.5 * rng.normal(size=len(X))) > 0).astype(np.int64)
    models = {}
    for name, est in (("decision-tree", DecisionTreeClassifier(random_state=0)),
                      ("random-forest", RandomForestClassifier(n_estimators=100, random_state=0))):
        est.fit(X, y)
        trees = est.estimators_ if hasattr(est, "estimators_") else [est]
        model = TreeEnsembleModel(name, "classifier", *_flatten(trees, True), est.classes_.astype(np.float64), n_features=FEATURES)
        base = work / name
        arrays, meta = model.to_artifacts()
        ArtifactWriter(base / "model").save(name, arrays, meta)
        with open(base / "model.pkl", "wb") as f:
            pickle.dump(est, f)
        models[name] = (base, est)
    return models


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def wait_ping(port: int, timeout: float = 60) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if get(f"http://127.0.0.1:{port}/ping") == 200:
                return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.01)
    raise SystemExit(f"no 200 from /ping on port {port}")


class Ours:
    name = "ours"

    def __init__(self, base: Path, env: dict | None = None):
        self.base, self.port, self.extra = base, free_port(), env or {}

    def start(self) -> float:
        env = {**os.environ, "SAGEMAKER_BASE_DIR": str(self.base), "SAGEMAKER_BIND_TO_PORT": str(self.port),
               "SAGEMAKER_MODEL_SERVER_WORKERS": "2", "SERVE_RUNTIME_DIR": str(self.base / f"rt-{self.port}"),
               "PATH": f"{Path(PYTHON).parent}:{os.environ['PATH']}", **self.extra}
        started = time.monotonic()
        self.proc = subprocess.Popen([str(ROOT / "container" / "serve")], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_ping(self.port)
        return time.monotonic() - started

    def workers(self) -> list[psutil.Process]:
        master = int((self.base / f"rt-{self.port}" / "gunicorn.pid").read_text())
        return psutil.Process(master).children()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(40)


class Classic:
    """nginx (the classic example's config) + gunicorn sync workers + a Flask app from bench/classic."""

    def __init__(self, app: str, model: Path | None, work: Path):
        self.app, self.model, self.port = app, model, free_port()
        self.runtime = Path(tempfile.mkdtemp(dir=work, prefix="classic-"))
        self.name = "classic" if app == "predictor" else "no-op"

    def start(self) -> float:
        conf = (ROOT / "bench" / "classic" / "nginx.conf").read_text()
        for k, v in {"@RUNTIME@": str(self.runtime), "@PORT@": str(self.port), "@USER@": "user root;" if os.geteuid() == 0 else ""}.items():
            conf = conf.replace(k, v)
        (self.runtime / "nginx.conf").write_text(conf)
        env = {**os.environ, "CLASSIC_MODEL": str(self.model or ""), "PYTHONPATH": str(ROOT / "bench" / "classic")}
        started = time.monotonic()
        self.nginx = subprocess.Popen(["nginx", "-c", str(self.runtime / "nginx.conf"), "-e", "stderr"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.gunicorn = subprocess.Popen(
            [PYTHON, "-m", "gunicorn", "--bind", f"unix:{self.runtime / 'gunicorn.sock'}", "--workers", "2", "--timeout", "60",
             "--control-socket", str(self.runtime / "g.ctl"), "--worker-tmp-dir", str(self.runtime), f"{self.app}:app"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_ping(self.port)
        return time.monotonic() - started

    def stop(self) -> None:
        for p, sig in ((self.nginx, signal.SIGQUIT), (self.gunicorn, signal.SIGTERM)):
            p.send_signal(sig)
        for p in (self.nginx, self.gunicorn):
            p.wait(40)


LUA_POST = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "text/csv"
wrk.headers["Accept"] = "text/csv"
"""

LUA_MIXED = """
local reqs = {requests}
local i = 0
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {{}} end
function request()
  i = i + 1
  local r = reqs[(i % #reqs) + 1]
  return wrk.format("POST", "/invocations", {{["Content-Type"] = r[1], ["Accept"] = r[2]}}, r[3])
end
function response(status, headers, body) statuses[status] = (statuses[status] or 0) + 1 end
function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do io.write(string.format("status %d %d\\n", k, v)) end
  end
end
"""


def lua_string(b: bytes) -> str:
    return "[==[" + b.decode() + "]==]"


def wrk(port: int, script: str, connections: int = 8, duration: int = DURATION) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", f.name,
                          f"http://127.0.0.1:{port}/invocations"], capture_output=True, text=True).stdout
    os.unlink(f.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[p99.group(2)]
    statuses = {}
    for code, count in re.findall(r"status (\d+) (\d+)", out):
        statuses[int(code)] = statuses.get(int(code), 0) + int(count)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p99_ms": float(p99.group(1)) * scale, "statuses": statuses, "non2xx": int(errors.group(1)) if errors else 0}


def one_row_load(models: dict, work: Path) -> None:
    row = ",".join(f"{v:.6f}" for v in np.random.default_rng(1).normal(size=FEATURES)).encode()
    noop = Classic("noop", None, work)
    noop.start()
    ceiling = wrk(noop.port, LUA_POST.format(body=lua_string(row)))
    noop.stop()
    print(f"no-op ceiling: {ceiling['rps']:,.0f} requests/s, p99 {ceiling['p99_ms']:.1f} ms")
    for name, target_p99 in (("decision-tree", 8.0), ("random-forest", 20.0)):
        base, _ = models[name]
        results = {}
        for server in (Classic("predictor", base / "model.pkl", work), Ours(base)):
            server.start()
            time.sleep(3)  # let start-up work (worker warm-up) finish: steady state is measured
            wrk(server.port, LUA_POST.format(body=lua_string(row)), duration=2)  # warm-up
            results[server.name] = wrk(server.port, LUA_POST.format(body=lua_string(row)))
            server.stop()
        ours, classic = results["ours"], results["classic"]
        ratio = ours["rps"] / classic["rps"]
        print(f"{name}, 1-row CSV, wrk -t2 -c8 -d{DURATION}s: ours {ours['rps']:,.0f} req/s (p99 {ours['p99_ms']:.1f} ms, "
              f"{ours['non2xx']} non-2xx), classic {classic['rps']:,.0f} req/s (p99 {classic['p99_ms']:.1f} ms): "
              f"{ratio:.2f}x the baseline (target >= 3x: {'MET' if ratio >= 3 else 'NOT MET'}), "
              f"{ours['rps'] / ceiling['rps']:.0%} of the no-op ceiling; p99 target <= {target_p99:g} ms: "
              f"{'MET' if ours['p99_ms'] <= target_p99 else 'NOT MET'}")


def post(port: int, body: bytes, content_type: str = "text/csv", accept: str = "text/csv") -> tuple[int, float, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body, method="POST",
                                 headers={"Content-Type": content_type, "Accept": accept})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, time.monotonic() - started, r.read()
    except urllib.error.HTTPError as e:
        return e.code, time.monotonic() - started, e.read()


def big_request(models: dict, work: Path) -> None:
    base, forest = models["random-forest"]
    rng = np.random.default_rng(2)
    rows = rng.normal(size=(52000, FEATURES)).astype(np.float32)
    text = io.StringIO()
    np.savetxt(text, rows, delimiter=",", fmt="%.6f")
    body = text.getvalue().encode()
    direct = []
    for _ in range(3):
        started = time.monotonic()
        forest.predict(rows)
        direct.append(time.monotonic() - started)
    server = Ours(base)
    server.start()
    for _ in range(4):  # warm-up: each worker prepares its compiled tree walk in the background after start
        post(server.port, body)
    timings = {}
    for accept in ("text/csv", "application/json"):
        runs = []
        for _ in range(3):
            status, seconds, reply = post(server.port, body, accept=accept)
            assert status == 200 and len(reply) > 0
            runs.append(seconds)
        timings[accept] = statistics.median(runs)
    six = body * 2
    six = six[: six.index(b"\n", 6_000_000) + 1]
    ours_six = post(server.port, six)[0]
    server.stop()
    classic = Classic("predictor", base / "model.pkl", work)
    classic.start()
    classic_six = post(classic.port, six)[0]
    classic_five = post(classic.port, body)
    classic.stop()
    ref = statistics.median(direct)
    ratio = timings["text/csv"] / ref
    print(f"5 MB CSV ({len(body) / 1e6:.1f} MB, {len(rows):,} rows, 100-tree forest): ours {timings['text/csv']:.3f} s end to end "
          f"(Accept text/csv; {timings['application/json']:.3f} s with JSON) vs scikit-learn predict alone {ref:.3f} s: "
          f"{ratio:.2f}x (target <= 1.1x: {'MET' if ratio <= 1.1 else 'NOT MET'}); classic server {classic_five[1]:.3f} s "
          f"({classic_five[1] / ref:.2f}x)")
    print(f"6 MB request ({len(six) / 1e6:.1f} MB): ours {ours_six}, classic {classic_six} (target: ours 200)")


def soak(models: dict, work: Path) -> None:
    base, _ = models["random-forest"]
    X = np.random.default_rng(3).normal(size=(3, FEATURES)).round(4)
    csv = "\n".join(",".join(map(str, r)) for r in X).encode()
    good = [
        ("text/csv", "application/json", csv),
        ("text/csv", "text/csv", csv),
        ("application/json", "application/json", json.dumps({"instances": [{"features": r} for r in X.tolist()]}).encode()),
        ("application/jsonlines", "application/jsonlines", "\n".join(json.dumps({"features": r}) for r in X.tolist()).encode()),
    ]
    bad = [("text/csv", "application/json", b"1,2,x"), ("text/plain", "application/json", csv), ("text/csv", "image/png", csv)]
    reqs = good * 3 + bad
    lua = "{" + ",".join("{" + ",".join(lua_string(v) if isinstance(v, bytes) else json.dumps(v) for v in r) + "}" for r in reqs) + "}"
    server = Ours(base)
    server.start()
    sampler_rss = {}

    def rss() -> int:
        return sum(p.memory_info().rss for p in server.workers())

    script = work / "soak.lua"  # each wrk thread loads the script itself: a file, not a pipe
    script.write_text(LUA_MIXED.format(requests=lua))
    proc = subprocess.Popen(["wrk", "-t2", "-c32", f"-d{SOAK}s", "--latency", "-s", str(script), f"http://127.0.0.1:{server.port}/invocations"],
                            stdout=subprocess.PIPE, text=True)
    time.sleep(min(10, SOAK / 3))
    sampler_rss["early"] = rss()
    out = proc.stdout.read()
    proc.wait()
    sampler_rss["end"] = rss()
    server.stop()
    statuses = {}
    for code, count in re.findall(r"status (\d+) (\d+)", out):
        statuses[int(code)] = statuses.get(int(code), 0) + int(count)
    expected = {200, 400, 406, 415}
    unexpected = sum(v for k, v in statuses.items() if k not in expected)
    server_errors = sum(v for k, v in statuses.items() if k >= 500)
    growth = sampler_rss["end"] / sampler_rss["early"] - 1
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    print(f"soak {SOAK} s, c=32, mixed content types and bad requests: {sum(statuses.values()):,} responses ({rps:,.0f}/s) {statuses}; "
          f"unexpected statuses {unexpected}, 5xx {server_errors} (target 0: {'MET' if unexpected == server_errors == 0 else 'NOT MET'}); "
          f"worker RSS {sampler_rss['early'] / 1e6:.0f} -> {sampler_rss['end'] / 1e6:.0f} MB ({growth:+.1%}; target < 10%: "
          f"{'MET' if growth < 0.10 else 'NOT MET'})")


def cold_start(models: dict, work: Path) -> None:
    base, _ = models["random-forest"]
    ours, classic = [], []
    for _ in range(3):
        s = Ours(base)
        ours.append(s.start())
        s.stop()
        c = Classic("predictor", base / "model.pkl", work)
        classic.append(c.start())
        c.stop()
    o, c = statistics.median(ours), statistics.median(classic)
    print(f"cold start (serve started -> first 200 from /ping, model loaded): ours {o:.2f} s, classic {c:.2f} s ({o / c:.2f}x); "
          f"target <= 1.0 s: {'MET' if o <= 1.0 else 'NOT MET'}")


def main() -> None:
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        models = train_models(work)
        parts = [a for a in sys.argv[1:] if not a.startswith("--")] or ["cold_start", "one_row_load", "big_request", "soak"]
        for part in parts:
            globals()[part](models, work)


if __name__ == "__main__":
    main()
