"""What gunicorn loads (with --preload, once, before forking its workers)."""

import logging
import sys

from ..paths import Paths
from .app import create_app

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(process)d] %(message)s", stream=sys.stderr)
app = create_app(Paths.from_env().model)
