"""Bring-your-own-algorithm container for Amazon SageMaker.

Packages by layer, bottom to top (README, "Development"): the foundation modules, ``data``,
``distributed``, ``stats``, ``algorithms``, ``evaluation``, ``engine``, and the two
entrypoints ``training`` and ``serving``.
"""

__version__ = "0.1.0"
