"""A TCP front for PostgreSQL that a test can close and open again: a network outage at a designed seam.

The process under test connects to the proxy's port; the proxy relays bytes to the real server (its unix
socket or TCP address, from the URL). :meth:`PgProxy.cut` stops listening and drops every relayed
connection, as when the server goes away; :meth:`PgProxy.open` listens again.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from urllib.parse import parse_qs, urlsplit, urlunsplit


def _target(url: str) -> tuple[int, str | tuple[str, int]]:
    parts = urlsplit(url)
    host = parse_qs(parts.query).get("host", [parts.hostname or "localhost"])[0]
    port = parts.port or 5432
    if host.startswith("/"):
        return socket.AF_UNIX, f"{host}/.s.PGSQL.{port}"
    return socket.AF_INET, (host, port)


class PgProxy:
    def __init__(self, url: str, port: int) -> None:
        self.family, self.address = _target(url)
        self.port = port
        parts = urlsplit(url)
        query = "&".join(p for p in parts.query.split("&") if p and not p.startswith("host="))
        user = parts.username or "postgres"
        secret = f":{parts.password}" if parts.password else ""
        self.url = urlunsplit(parts._replace(netloc=f"{user}{secret}@127.0.0.1:{port}", query=query))
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def open(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            server = socket.socket(self.family, socket.SOCK_STREAM)
            try:
                server.connect(self.address)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets |= {client, server}
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
