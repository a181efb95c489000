"""Bring-your-own-algorithm container for Amazon SageMaker.

Folders follow the data path: ``data`` (sources, framing, formats),
``algorithms``, ``evaluation``, ``training`` (the ``train`` entrypoint).
"""

__version__ = "0.1.0"
