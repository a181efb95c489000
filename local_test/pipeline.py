"""A serial inference pipeline on loopback, as SageMaker runs one: each container's response is the next
container's request, its Content-Type included (so each container's SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT
decides what the next one reads); the client's Accept goes to the last container only.

    python local_test/pipeline.py CONTENT_TYPE ACCEPT URL [URL ...] < body     (URL: .../invocations)
"""

from __future__ import annotations

import sys

from invoke import call_typed


def run(urls: list[str], body: bytes, content_type: str, accept: str) -> tuple[int, bytes, str]:
    """(status, body, Content-Type) of the last container, or of the first one that refused."""
    for i, url in enumerate(urls):
        status, body, content_type = call_typed(url, body, content_type, accept if i == len(urls) - 1 else None)
        if status >= 400:
            return status, body, content_type
    return status, body, content_type


def main(argv: list[str]) -> int:
    content_type, accept, *urls = argv
    status, reply, _ = run(urls, sys.stdin.buffer.read(), content_type, accept)
    sys.stdout.write(reply.decode(errors="replace") + ("" if reply.endswith(b"\n") else "\n"))
    return 0 if status < 400 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
