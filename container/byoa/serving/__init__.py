"""The inference server: nginx -> gunicorn -> flask (``create_app``), codecs, the ``serve`` launcher."""
