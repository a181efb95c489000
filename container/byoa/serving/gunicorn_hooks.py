"""gunicorn settings that need code (loaded with ``--config python:byoa.serving.gunicorn_hooks``)."""

import threading
import time

WARM_UP_DELAY = 2.0  # seconds: the first health checks are answered before the warm-up takes the CPU


def post_worker_init(worker):
    """Each worker prepares what big batches need (e.g. compiled trees) in the background, after it is serving."""
    model = worker.wsgi.config.get("BYOA_MODEL")
    if model is not None:
        threading.Thread(target=lambda: (time.sleep(WARM_UP_DELAY), model.warm_up()), name="warm-up", daemon=True).start()
