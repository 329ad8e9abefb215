"""The tests' webhook provider (tests/channels.py) tells a request a killed sender cut short from a
badly signed one: `make chaos` kills notification_svc mid-request, and only the second is a fault."""

from __future__ import annotations

import socket
import time

from tests.channels import Provider, serve_provider


def _send(port: int, request: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(request)
        conn.shutdown(socket.SHUT_WR)  # the sender goes away, as a killed one does
        conn.recv(1024)


def _wait(check, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "the provider never counted the request"
        time.sleep(0.01)


def test_a_body_cut_short_is_not_counted_as_a_bad_signature():
    provider = Provider()
    server = serve_provider(provider)
    port = server.server_address[1]
    try:
        head = b"POST / HTTP/1.1\r\nHost: x\r\nX-Clinic-Signature: sha256=00\r\nIdempotency-Key: k\r\n"
        _send(port, head + b'Content-Length: 40\r\n\r\n{"to": "+91')  # 11 of 40 bytes
        _wait(lambda: provider.cut_short == 1)
        assert provider.bad_signatures == 0
        whole = b'{"to": "+919999999999"}'
        _send(port, head + b"Content-Length: %d\r\n\r\n%s" % (len(whole), whole))
        _wait(lambda: provider.bad_signatures == 1)
        assert provider.cut_short == 1 and not provider.accepted
    finally:
        server.shutdown()
