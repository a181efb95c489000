"""A tiny HTTP client for trying a server without curl.

    python local_test/invoke.py URL/ping
    python local_test/invoke.py URL/invocations CONTENT_TYPE [ACCEPT] < body
    python local_test/invoke.py --wait URL/ping          (poll until it answers 200, up to 30 s)
"""

import sys
import time
import urllib.error
import urllib.request


def call(url: str, body: bytes | None = None, content_type: str | None = None, accept: str | None = None) -> tuple[int, bytes]:
    status, reply, _ = call_typed(url, body, content_type, accept)
    return status, reply


def call_typed(url: str, body: bytes | None = None, content_type: str | None = None, accept: str | None = None) -> tuple[int, bytes, str]:
    """(status, body, the reply's Content-Type)."""
    headers = {k: v for k, v in (("Content-Type", content_type), ("Accept", accept)) if v}
    request = urllib.request.Request(url, data=body, headers=headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, reply.read(), reply.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers.get("Content-Type", "")


def main(argv: list[str]) -> int:
    if argv[0] == "--wait":
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if call(argv[1])[0] == 200:
                    return 0
            except OSError:
                pass
            time.sleep(0.1)
        print(f"no 200 from {argv[1]} within 30 s", file=sys.stderr)
        return 1
    body = sys.stdin.buffer.read() if len(argv) > 1 else None
    status, reply = call(argv[0], body, *argv[1:3])
    sys.stdout.write(reply.decode(errors="replace") + ("" if reply.endswith(b"\n") else "\n"))
    sys.stdout.write(f"(HTTP {status})\n")
    return 0 if status < 400 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
