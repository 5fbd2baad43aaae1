"""One loopback HTTP server for all three emulators, routed by X-Original-Host."""

from __future__ import annotations

import socket
import struct
import threading
import time
import urllib.parse
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from publisher.sandbox.emulator import Emulator
from publisher.sandbox.faults import Fault, FaultTable
from publisher.sandbox.graph import LIVE_GRAPH_VERSIONS, SandboxGraph
from publisher.sandbox.http import Drop, Reply, Request
from publisher.sandbox.instagram import SandboxInstagram
from publisher.sandbox.state import SandboxState
from publisher.sandbox.x import SandboxX


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    sandbox: Sandbox


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm on, the body waits for the
    # client's (delayed) ACK of the headers: ~40 ms per answer on loopback. Real APIs do not.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Quiet: the sandbox keeps its own request log."""

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urllib.parse.urlsplit(self.path)
        req = Request(
            method=self.command,
            host=(self.headers.get("X-Original-Host") or self.headers.get("Host") or "").lower(),
            path=parts.path,
            query=dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        try:
            reply = self.server.sandbox.dispatch(req)
        except Drop:
            self._drop(reset=False)
            return
        except _Reset:
            self._drop(reset=True)
            return
        self._write(reply)

    def _write(self, reply: Reply) -> None:
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)
        except OSError:  # the client gave up (its timeout); nothing to do
            self.close_connection = True

    def _drop(self, *, reset: bool) -> None:
        self.close_connection = True
        conn = self.connection
        try:
            if reset:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        except OSError:
            pass

    do_GET = do_POST = do_DELETE = do_PUT = _handle


class _Reset(Exception):
    pass


class Sandbox:
    """The X, Facebook Graph and Instagram private-API emulators on one loopback port.

    Use as `with Sandbox(data_dir) as sb:` or `sb = Sandbox(data_dir).start(); ...; sb.stop()`.
    Live posts are kept in `data_dir/{x,facebook,instagram}.json`, so another process (or the
    next command) sees them.
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        port: int = 0,
        graph_versions: Iterable[str] = LIVE_GRAPH_VERSIONS,
        seed: int | None = None,
    ) -> None:
        self.state = SandboxState(Path(data_dir))
        self.faults = FaultTable(seed)
        self.emulators: dict[str, Emulator] = {
            "x": SandboxX(self.state),
            "facebook": SandboxGraph(self.state, versions=frozenset(graph_versions)),
            "instagram": SandboxInstagram(self.state),
        }
        self._by_host = {host: em for em in self.emulators.values() for host in em.hosts}
        self._requested_port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._log: list[dict[str, str]] = []
        self._log_lock = threading.Lock()

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> Sandbox:
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", self._requested_port), _Handler)
        server.sandbox = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="sandbox-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the sandbox is not running: call start() first")
        return int(self._server.server_address[1])

    # --- test and demo API -------------------------------------------------------------------
    def provision_account(self, platform: str, name: str) -> dict[str, str]:
        """Create an account on one emulator; returns the credentials its connector needs
        (plus `account_id`, the key for `live()` and `created_count()`)."""
        return self._emulator(platform).provision(name)

    def live(self, platform: str, account_id: str) -> list[dict[str, Any]]:
        return self._emulator(platform).live(account_id)

    def created_count(self, platform: str, account_id: str) -> int:
        return self._emulator(platform).created_count(account_id)

    def revoke(self, platform: str, account_id: str) -> None:
        self._emulator(platform).revoke(account_id)

    def inject(
        self,
        platform: str,
        endpoint: str,
        fault: str,
        *,
        times: int | None = None,
        rate: float | None = None,
        seconds: float = 0.0,
    ) -> None:
        """Make `endpoint` (an emulator endpoint name, or "*") fail `times` times (default once),
        or with probability `rate` until `clear_faults()`. `seconds`: latency/timeout sleep, or
        the rate-limit reset for "429"."""
        self._emulator(platform)
        if times is None and rate is None:
            times = 1
        self.faults.add(Fault(platform, endpoint, fault, times, rate, seconds))

    def clear_faults(self) -> None:
        self.faults.clear()

    def request_log(self) -> list[dict[str, str]]:
        with self._log_lock:
            return list(self._log)

    def _emulator(self, platform: str) -> Emulator:
        try:
            return self.emulators[platform]
        except KeyError:
            raise ValueError(f"unknown platform {platform!r}; one of {sorted(self.emulators)}") from None

    # --- request path ------------------------------------------------------------------------
    def dispatch(self, req: Request) -> Reply:
        emulator = self._by_host.get(req.host)
        if emulator is None:
            return Reply.of(421, {"message": f"the sandbox does not emulate {req.host!r}"})
        routed = emulator.route(req)
        endpoint = routed[0] if routed else "?"
        with self._log_lock:
            self._log.append(
                {
                    "platform": emulator.platform,
                    "endpoint": endpoint,
                    "method": req.method,
                    "host": req.host,
                    "path": req.path,
                }
            )
        if routed is None:
            return emulator.not_found(req)
        fault = self.faults.take(emulator.platform, endpoint)
        return self._apply(emulator, routed[1], req, fault)

    def _apply(self, emulator: Emulator, handler: Any, req: Request, fault: Fault | None) -> Reply:
        kind = fault.kind if fault else None
        if fault is not None and kind in ("latency", "timeout"):
            time.sleep(fault.seconds or (5.0 if kind == "timeout" else 0.5))
        elif kind == "reset":
            raise _Reset
        elif fault is not None and kind in ("429", "500", "503", "duplicate", "challenge"):
            return emulator.fault_reply(fault.kind, fault.seconds)
        reply: Reply = handler(req)
        if kind == "accept_drop":
            raise Drop
        return reply


def serve_forever(data_dir: Path | str, port: int) -> None:
    """Run the emulators in the foreground on 127.0.0.1:`port` until interrupted
    (`publisher sandbox serve`)."""
    sandbox = Sandbox(data_dir, port=port).start()
    try:
        while True:
            time.sleep(3600)
    finally:
        sandbox.stop()
