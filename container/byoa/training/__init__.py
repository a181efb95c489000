"""The ``train`` entrypoint."""
