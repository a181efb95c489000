"""``serve``: start nginx and gunicorn for this run, watch them, stop them gracefully.

Every runtime path (nginx config, pid files, temp folders, gunicorn's socket
and control socket) lives in one folder: ``SERVE_RUNTIME_DIR`` or a fresh
temporary one, so several servers can run side by side.
"""

from __future__ import annotations

import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..cpus import THREAD_VARS
from .app import Settings

log = logging.getLogger("byoa.serve")

CONTAINER = Path(__file__).resolve().parents[2]
NGINX_TEMPLATE = CONTAINER / "nginx.conf"
GRACE_SECONDS = 25  # SageMaker sends SIGKILL 30 s after SIGTERM
MAX_OPEN_FILES = 65536


def nginx_config(runtime: Path, port: int, settings: Settings, open_files: int) -> str:
    values = {
        "@OPEN_FILES@": str(open_files),
        "@CONNECTIONS@": str(max(512, open_files // 2 - 64)),  # a proxied request takes two: client and upstream
        "@RUNTIME@": str(runtime),
        "@PORT@": str(port),
        "@MAX_BODY_MB@": str(settings.max_payload_mb),
        "@BODY_BUFFER_MB@": str(min(settings.max_payload_mb, 8)),
        "@TIMEOUT@": str(settings.timeout),
        "@GRACE@": str(GRACE_SECONDS - 5),  # nginx's part of the grace; gunicorn then has what is left
        "@USER@": "user root;" if os.geteuid() == 0 else "",  # workers must reach the socket and temp folders
    }
    text = NGINX_TEMPLATE.read_text()
    for key, value in values.items():
        text = text.replace(key, value)
    return text


def gunicorn_command(runtime: Path, settings: Settings) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn",
        "--bind", f"unix:{runtime / 'gunicorn.sock'}",
        "--workers", str(settings.workers),
        "--timeout", str(settings.timeout),
        "--graceful-timeout", str(GRACE_SECONDS),
        # nginx's limits are the ones clients meet (as JSON); gunicorn's own would answer with HTML pages
        "--limit-request-line", "0",
        "--limit-request-fields", "32768",
        "--limit-request-field_size", "0",
        "--preload",  # the model is loaded once, before any worker answers /ping, and shared copy-on-write
        "--pid", str(runtime / "gunicorn.pid"),
        "--control-socket", str(runtime / "gunicorn.ctl"),
        "--worker-tmp-dir", str(runtime),
        "--error-logfile", "-",
        "--log-level", "info",
        "--config", "python:byoa.serving.gunicorn_hooks",
        "--chdir", str(CONTAINER),
        "byoa.serving.wsgi:app",
    ]


def open_files_limit() -> int:
    """The soft RLIMIT_NOFILE, raised to the hard limit first: nginx's connections and gunicorn's sockets are files."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = MAX_OPEN_FILES if hard == resource.RLIM_INFINITY else min(hard, MAX_OPEN_FILES)
        if target > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return soft


def start_guard(pgids: list[int]) -> tuple[int, int]:
    """(pid, pipe) of a process that kills these process groups if serve dies without draining them (SIGKILL, a
    crash): it waits on a pipe only serve can write to, whose end it sees when serve is gone. Writing a byte to
    the pipe releases it."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()  # a terminal's Ctrl-C or a group signal meant for serve does not reach it
            os.close(write_end)
            if not os.read(read_end, 1):
                for pgid in pgids:
                    _kill_group(pgid)
        finally:
            os._exit(0)
    os.close(read_end)
    return pid, write_end


class Server:
    """nginx and gunicorn, each in its own process group (``start_new_session``), so that when one dies its own
    children (an nginx worker, gunicorn workers) are killed with it and none can keep the port; a guard process
    does the same if serve itself is killed."""

    def __init__(self, runtime: Path, port: int, settings: Settings):
        self.runtime, self.port, self.settings = runtime, port, settings
        self.nginx: subprocess.Popen | None = None
        self.gunicorn: subprocess.Popen | None = None
        self.guard: tuple[int, int] | None = None
        self.stopping = False

    def start(self) -> None:
        conf = self.runtime / "nginx.conf"
        conf.write_text(nginx_config(self.runtime, self.port, self.settings, open_files_limit()))
        self.nginx = subprocess.Popen(["nginx", "-c", str(conf), "-e", "stderr"], start_new_session=True)
        env = dict(os.environ)
        for var in THREAD_VARS:  # workers are the parallelism: one BLAS/OpenMP thread each unless the user says otherwise
            env.setdefault(var, "1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CONTAINER), env.get("PYTHONPATH")]))
        self.gunicorn = subprocess.Popen(gunicorn_command(self.runtime, self.settings), env=env, start_new_session=True)
        self.guard = start_guard([self.nginx.pid, self.gunicorn.pid])
        log.info("serve: nginx on port %d -> gunicorn (%d workers, timeout %d s%s, payload limit %d MB); runtime files in %s",
                 self.port, self.settings.workers, self.settings.timeout, ", batch transform" if self.settings.batch else "",
                 self.settings.max_payload_mb, self.runtime)

    def stop(self, *_) -> None:
        """Asks for a graceful stop; ``wait`` drains in order."""
        self.stopping = True

    def wait(self) -> int:
        """0 after a requested stop; 1 if nginx or gunicorn died on its own (the other is stopped, both groups killed)."""
        while not self.stopping:
            for name, proc in (("nginx", self.nginx), ("gunicorn", self.gunicorn)):
                if proc.poll() is not None:
                    log.error("serve: %s exited with code %s; stopping", name, proc.returncode)
                    self.drain()
                    return 1
            time.sleep(0.1)
        self.drain()
        return 0

    def drain(self) -> None:
        """In order, within GRACE_SECONDS: nginx stops accepting and finishes every request it holds (uploads still
        arriving included), which needs gunicorn alive; then gunicorn's workers finish theirs and exit. Whatever is
        left of either process group is then killed."""
        log.info("serve: stopping (finishing in-flight requests)")
        deadline = time.monotonic() + GRACE_SECONDS
        for proc, sig in ((self.nginx, signal.SIGQUIT), (self.gunicorn, signal.SIGTERM)):
            if proc is None:
                continue
            if proc.poll() is None:
                proc.send_signal(sig)
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("serve: pid %d did not stop within %d s; killing it", proc.pid, GRACE_SECONDS)
            _kill_group(proc.pid)
            proc.wait()
        if self.guard is not None:
            pid, pipe = self.guard
            os.write(pipe, b"x")
            os.close(pipe)
            os.waitpid(pid, 0)
            self.guard = None


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    try:
        settings = Settings.from_env()
        port = int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080"))
    except ValueError as exc:
        log.error("serve: %s", exc)
        return 2
    if not shutil.which("nginx"):
        log.error("serve: nginx is not installed (apt-get install nginx)")
        return 2
    given = os.environ.get("SERVE_RUNTIME_DIR")
    runtime = Path(given) if given else Path(tempfile.mkdtemp(prefix="byoa-serve-"))
    runtime.mkdir(parents=True, exist_ok=True)
    server = Server(runtime, port, settings)
    signal.signal(signal.SIGTERM, server.stop)
    signal.signal(signal.SIGINT, server.stop)
    try:
        server.start()
        return server.wait()
    except BaseException:
        server.stopping = True
        server.drain()
        raise
    finally:
        if not given:
            shutil.rmtree(runtime, ignore_errors=True)
