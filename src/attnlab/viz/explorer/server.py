"""``attnlab explore --serve``: the explorer page with live inference, on 127.0.0.1 only.

    GET  /               the page (the startup items, plus an input box)
    POST /api/explain    {"text": "..."} (JSON) | an image's bytes (image/*) | {"graph": ...}
                         -> {"examples": [...], "blobs": {...}} or {"error": "..."} (400/413/500)

One model per server: ``infer`` runs under a lock, so concurrent requests queue instead of
sharing the model. Bad input is answered with a JSON error and the server keeps running;
Ctrl-C stops it cleanly (the socket is closed, the call returns).
"""

from __future__ import annotations

import ipaddress
import json
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from attnlab.attention.maps import Explained
from attnlab.errors import AttnlabError
from attnlab.viz.explorer.pack import Blobs, pack_items
from attnlab.viz.explorer.page import build_meta, render_html

INPUT_KINDS = ("text", "image", "graph")
IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")


class _Handled(Exception):
    """An HTTP error answered as ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _is_image(data: bytes) -> bool:
    return data.startswith(IMAGE_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


class ExplorerServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer holding the page, the model's ``infer`` and its lock."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], *, page: str, infer: Callable[[dict], Explained],
                 input_kind: str, max_text_chars: int, max_image_bytes: int) -> None:
        super().__init__(address, _Handler)
        self.page = page.encode("utf-8")
        self.infer = infer
        self.input_kind = input_kind
        self.max_text_chars = max_text_chars
        self.max_image_bytes = max_image_bytes
        self.lock = threading.Lock()
        self.requests = 0

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def parse(self, content_type: str, body: bytes) -> dict[str, Any]:
        """The request ``infer`` gets, or a 400 naming what is wrong."""
        if self.input_kind == "image":
            if content_type.startswith("application/json"):
                raise _Handled(400, "send the image's bytes (Content-Type image/png or image/jpeg), not JSON")
            if not body:
                raise _Handled(400, "empty request: expected an image")
            if not _is_image(body):
                raise _Handled(400, "not an image: expected PNG, JPEG, GIF, BMP or WebP bytes")
            return {"image_bytes": body}
        try:
            request = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise _Handled(400, f"malformed JSON: {err}") from None
        key = "text" if self.input_kind == "text" else "graph"
        if not isinstance(request, dict) or key not in request:
            raise _Handled(400, f'expected a JSON object {{"{key}": ...}}')
        value = request[key]
        if self.input_kind == "text":
            if not isinstance(value, str) or not value.strip():
                raise _Handled(400, '"text": expected a non-empty string')
            if len(value) > self.max_text_chars:
                raise _Handled(400, f'"text": {len(value)} characters; at most {self.max_text_chars}')
        return {key: value}

    def explain(self, request: dict[str, Any]) -> dict[str, Any]:
        with self.lock:  # one model, one inference at a time
            self.requests += 1
            tag = self.requests
            try:
                explained = self.infer(request)
            except AttnlabError as err:
                raise _Handled(400, str(err)) from None
            except Exception as err:  # the model failed: answer and keep serving
                print(f"attnlab explore: inference failed: {type(err).__name__}: {err}", file=sys.stderr)
                raise _Handled(500, f"inference failed: {type(err).__name__}: {err}") from None
        if not isinstance(explained, Explained):
            raise _Handled(500, f"inference returned {type(explained).__name__}, expected Explained")
        blobs = Blobs(prefix=f"r{tag}_")
        examples = pack_items([explained], blobs)
        for k, e in enumerate(examples):
            e["title"] = f"live {tag}" + (f".{k}" if len(examples) > 1 else "") + ": " + _summary(request)
        return {"examples": examples, "blobs": blobs.items}


def _summary(request: dict[str, Any]) -> str:
    if "text" in request:
        return request["text"][:60]
    if "image_bytes" in request:
        return f"image ({len(request['image_bytes'])} bytes)"
    return "graph"


class _Handler(BaseHTTPRequestHandler):
    server: ExplorerServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the CLI prints the URL only
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj, separators=(",", ":")).encode("utf-8"), "application/json")

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(200, self.server.page, "text/html; charset=utf-8")
        elif path == "/favicon.ico":
            self._send(204, b"", "image/x-icon")
        else:
            self._json(404, {"error": f"no such page: {path}"})

    def do_POST(self) -> None:  # noqa: N802
        try:
            if self.path.split("?", 1)[0] != "/api/explain":
                raise _Handled(404, f"no such endpoint: {self.path}; POST /api/explain")
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                raise _Handled(411, "Content-Length required") from None
            limit = self.server.max_image_bytes if self.server.input_kind == "image" else 4 * self.server.max_text_chars + 1024
            if length < 0 or length > limit:
                self.close_connection = True  # the body is not read
                raise _Handled(413, f"request too large: {length} bytes; at most {limit}")
            body = self.rfile.read(length)
            request = self.server.parse(self.headers.get("Content-Type", "").lower(), body)
            self._json(200, self.server.explain(request))
        except _Handled as err:
            self._json(err.status, {"error": str(err)})

    def do_PUT(self) -> None:  # noqa: N802
        self._json(405, {"error": "method not allowed"})

    do_DELETE = do_PATCH = do_PUT


def make_server(
    infer: Callable[[dict], Explained], *, items: list[Explained], title: str, input_kind: str,
    host: str = "127.0.0.1", port: int = 0, max_text_chars: int = 2000, max_image_bytes: int = 8_000_000,
) -> ExplorerServer:
    """The bound (not yet serving) server; :func:`serve` runs it until Ctrl-C."""
    if input_kind not in INPUT_KINDS:
        raise AttnlabError(f"input_kind {input_kind!r}: expected one of {INPUT_KINDS}")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise AttnlabError(f"--host {host}: the explorer serves on this machine only (127.0.0.1, ::1)")
    if not 0 <= port <= 65535:
        raise AttnlabError(f"--port {port}: expected 0 (any free port) to 65535")
    if max_text_chars < 1 or max_image_bytes < 1:
        raise AttnlabError("max_text_chars and max_image_bytes must be >= 1")
    blobs = Blobs()
    serve_cfg = {"input_kind": input_kind, "max_text_chars": max_text_chars, "max_image_bytes": max_image_bytes}
    meta = build_meta(items, blobs, title=title, serve=serve_cfg) if items else {
        "version": 1, "title": title, "sets": [{"title": title, "examples": []}], "serve": serve_cfg}
    try:
        return ExplorerServer((host, port), page=render_html(meta, blobs), infer=infer, input_kind=input_kind,
                              max_text_chars=max_text_chars, max_image_bytes=max_image_bytes)
    except OSError as err:
        raise AttnlabError(f"--port {port}: cannot listen on {host}: {err.strerror or err}") from None


def serve(
    infer: Callable[[dict], Explained], *, items: list[Explained], title: str, input_kind: str,
    host: str = "127.0.0.1", port: int = 0, max_text_chars: int = 2000, max_image_bytes: int = 8_000_000,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the explorer with live inference until Ctrl-C; ``ready(url)`` is called once listening."""
    server = make_server(infer, items=items, title=title, input_kind=input_kind, host=host, port=port,
                         max_text_chars=max_text_chars, max_image_bytes=max_image_bytes)
    try:
        if ready is not None:
            ready(server.url)
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
