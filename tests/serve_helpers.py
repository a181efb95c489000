"""Start the real container/serve (nginx + gunicorn) on a free loopback port, talk to it, stop it."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from conftest import CONTAINER

SERVE = CONTAINER / "serve"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Reply:
    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


class ServeProcess:
    def __init__(self, base: Path, env: dict | None = None, workers: int = 2):
        self.base = base
        self.port = free_port()
        self.runtime = base / f"serve-runtime-{self.port}"
        self.env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "SAGEMAKER_BASE_DIR": str(base),
            "SAGEMAKER_BIND_TO_PORT": str(self.port),
            "SERVE_RUNTIME_DIR": str(self.runtime),
            "SAGEMAKER_MODEL_SERVER_WORKERS": str(workers),
            **(env or {}),
        }
        self.log_path = base / "serve.log"
        self.proc: subprocess.Popen | None = None

    def start(self, wait: bool = True) -> "ServeProcess":
        self.log = open(self.log_path, "ab")  # append: nginx reopens /dev/stdout, and must not write over it
        self.proc = subprocess.Popen([str(SERVE)], env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 30.0, status: int = 200) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"serve exited with {self.proc.returncode}:\n{self.output()}"
            try:
                if self.request("GET", "/ping").status == status:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"serve did not answer /ping with {status} within {timeout} s:\n{self.output()}")

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None, timeout: float = 120) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()

    def invoke(self, body: bytes, content_type: str | None, accept: str | None = None) -> Reply:
        headers = {}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if accept is not None:
            headers["Accept"] = accept
        return self.request("POST", "/invocations", body, headers)

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 35) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            self.log.close()
