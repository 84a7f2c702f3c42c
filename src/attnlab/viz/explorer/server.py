"""``attnlab explore --serve``: the explorer page with live inference, on 127.0.0.1 only.

    GET  /?token=T       the page (the startup items, plus an input box)
    POST /api/explain    {"text": "..."} (application/json) | an image's bytes (image/*) | {"graph": ...},
                         with the header X-Attnlab-Token: T
                         -> {"examples": [...], "blobs": {...}} or {"error": "..."} (4xx/500)

Who may connect (Host, Origin, the per-run token, Content-Type) and the headers every answer
carries: ``guard.py``. One model per server: ``infer`` runs under a lock, so concurrent requests
queue instead of sharing the model. Under load and bad input: a listen backlog of 128, at most
``max_threads`` connections handled at once (the rest wait in the backlog), an idle or slow client
is dropped after ``idle_timeout`` seconds, every bad request is a 4xx JSON error and one log line,
a client that hangs up is not an error, and running out of file descriptors backs off instead of
spinning. Ctrl-C stops it cleanly (the socket is closed, the call returns).
"""

from __future__ import annotations

import errno
import ipaddress
import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from attnlab.attention.maps import Explained
from attnlab.errors import AttnlabError
from attnlab.viz.explorer.guard import (
    TOKEN_HEADER,
    Refused,
    check_content_type,
    check_host,
    check_token,
    new_token,
    security_headers,
)
from attnlab.viz.explorer.pack import Blobs, pack_items
from attnlab.viz.explorer.page import build_meta, content_security_policy, render_html

INPUT_KINDS = ("text", "image", "graph")
IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")
HANGUPS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)
OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
BACKOFF = (0.05, 1.0)  # accept's pause after running out of descriptors: first, most (doubling)


def _log_to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _is_image(data: bytes) -> bool:
    return data.startswith(IMAGE_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


class ExplorerServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer holding the page, the model's ``infer``, its lock and the run's token.

    ``max_threads`` connections are handled at once (a semaphore taken before each handler thread
    starts; the accept loop waits for a free one, later clients wait in the listen backlog of
    ``request_queue_size``); ``idle_timeout`` seconds of silence from a client drop it;
    ``log(line)`` receives one line per refused or failed request (default: stderr)."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], *, page: str, infer: Callable[[dict], Explained],
                 input_kind: str, max_text_chars: int, max_image_bytes: int, token: str, csp: str,
                 max_threads: int = 32, idle_timeout: float = 10.0,
                 log: Callable[[str], None] = _log_to_stderr) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.page = page.encode("utf-8")
        self.infer = infer
        self.input_kind = input_kind
        self.max_text_chars = max_text_chars
        self.max_image_bytes = max_image_bytes
        self.token = token
        self.response_headers = security_headers(csp)
        self.idle_timeout = idle_timeout
        self.log = log
        self.lock = threading.Lock()
        self.requests = 0
        self.max_threads = max_threads
        self.slots = threading.BoundedSemaphore(max_threads)
        self.busy = self.most_busy = 0  # handler threads now, and at most so far
        self._count = threading.Lock()
        self._backoff = BACKOFF[0]

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def base_url(self) -> str:
        host = self.server_address[0]
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}/"

    @property
    def url(self) -> str:
        """The page's address, token included: the one URL to open."""
        return f"{self.base_url}?token={self.token}"

    # ---------- load: bounded threads, back-off on EMFILE, quiet hang-ups ----------

    def get_request(self):
        try:
            conn = super().get_request()
        except OSError as err:
            if err.errno in OUT_OF_DESCRIPTORS:  # the client stays in the backlog: pause, do not spin
                if self._backoff == BACKOFF[0]:
                    self.log(f"attnlab explore: cannot accept a connection ({err.strerror}); backing off")
                self._pause(self._backoff)
                self._backoff = min(2 * self._backoff, BACKOFF[1])
            raise
        self._backoff = BACKOFF[0]
        return conn

    def _pause(self, seconds: float) -> None:
        time.sleep(seconds)

    def process_request(self, request, client_address) -> None:
        self.slots.acquire()
        try:
            super().process_request(request, client_address)
        except BaseException:  # the thread did not start: its slot is free again
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        with self._count:
            self.busy += 1
            self.most_busy = max(self.most_busy, self.busy)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._count:
                self.busy -= 1
            self.slots.release()

    def handle_error(self, request, client_address) -> None:
        """An exception a handler did not answer: a hang-up is no error; anything else is one line."""
        err = sys.exc_info()[1]
        if not isinstance(err, HANGUPS):
            self.log(f"attnlab explore: error answering {client_address[0]}: {type(err).__name__}: {err}")

    # ---------- requests ----------

    def parse(self, body: bytes) -> dict[str, Any]:
        """The request ``infer`` gets, or a 400 naming what is wrong (``content_type`` already checked)."""
        if self.input_kind == "image":
            if not body:
                raise Refused(400, "empty request: expected an image")
            if not _is_image(body):
                raise Refused(400, "not an image: expected PNG, JPEG, GIF, BMP or WebP bytes")
            return {"image_bytes": body}
        request = _load_json(body)
        key = "text" if self.input_kind == "text" else "graph"
        if not isinstance(request, dict) or key not in request:
            raise Refused(400, f'expected a JSON object {{"{key}": ...}}')
        value = request[key]
        if self.input_kind == "text":
            if not isinstance(value, str) or not value.strip():
                raise Refused(400, '"text": expected a non-empty string')
            if len(value) > self.max_text_chars:
                raise Refused(400, f'"text": {len(value)} characters; at most {self.max_text_chars}')
        return {key: value}

    def explain(self, request: dict[str, Any]) -> dict[str, Any]:
        with self.lock:  # one model, one inference at a time
            self.requests += 1
            tag = self.requests
            try:
                explained = self.infer(request)
            except AttnlabError as err:
                raise Refused(400, str(err)) from None
            except Exception as err:  # the model failed: answer and keep serving
                raise Refused(500, f"inference failed: {type(err).__name__}: {err}") from None
        if not isinstance(explained, Explained):
            raise Refused(500, f"inference returned {type(explained).__name__}, expected Explained")
        blobs = Blobs(prefix=f"r{tag}_")
        examples = pack_items([explained], blobs)
        for k, e in enumerate(examples):
            e["title"] = f"live {tag}" + (f".{k}" if len(examples) > 1 else "") + ": " + _summary(request)
        return {"examples": examples, "blobs": blobs.items}


def _load_json(body: bytes) -> Any:
    """The body as JSON; anything Python's parser refuses or cannot hold is a 400, not a crash."""
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise Refused(400, f"malformed JSON: {err}") from None
    except RecursionError:
        raise Refused(400, "malformed JSON: nested too deeply") from None
    except ValueError as err:  # e.g. an integer over Python's 4,300-digit limit
        raise Refused(400, f"malformed JSON: {err}") from None
    try:  # a lone surrogate (\ud800) is valid JSON but not text
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as err:
        raise Refused(400, f"malformed JSON: a string holds a lone surrogate at position {err.start}") from None
    return value


def _summary(request: dict[str, Any]) -> str:
    if "text" in request:
        return request["text"][:60]
    if "image_bytes" in request:
        return f"image ({len(request['image_bytes'])} bytes)"
    return "graph"


class _Handler(BaseHTTPRequestHandler):
    server: ExplorerServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        self.timeout = self.server.idle_timeout  # StreamRequestHandler sets it on the socket
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:  # quiet: refusals are logged by _refuse
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in self.server.response_headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj, separators=(",", ":")).encode("utf-8"), "application/json")

    def _refuse(self, status: int, message: str) -> None:
        """A 4xx/5xx answer ``{"error": message}`` and one log line (the path without its query:
        the token stays out of logs)."""
        path = (getattr(self, "path", "") or "").split("?", 1)[0][:200]
        self.server.log(f"attnlab explore: {status} {getattr(self, 'command', '') or '-'} {path or '-'}: {message}")
        self._json(status, {"error": message})

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (bad request line, long URI, too many headers) as JSON too."""
        self.close_connection = True
        self.request_version = self.protocol_version  # headers even for a request line http.server took for HTTP/0.9
        self._refuse(int(code), message or self.responses.get(code, ("error",))[0])

    def _path(self) -> tuple[str, str]:
        path, _, query = self.path.partition("?")
        return path, query

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        try:
            check_host(self.headers, self.server.port)
            path, query = self._path()
            if path in ("/", "/index.html"):
                given = parse_qs(query).get("token", [None])[0]
                check_token(given, self.server.token, "the page's URL")
                self._send(200, self.server.page, "text/html; charset=utf-8")
            elif path == "/favicon.ico":
                self._send(204, b"", "image/x-icon")
            else:
                raise Refused(404, f"no such page: {path}")
        except Refused as err:
            self._refuse(err.status, str(err))

    def do_POST(self) -> None:  # noqa: N802
        try:
            self.close_connection = True  # until the body is read: an early refusal leaves it unread
            check_host(self.headers, self.server.port)
            if self._path()[0] != "/api/explain":
                raise Refused(404, f"no such endpoint: {self._path()[0]}; POST /api/explain")
            check_token(self.headers.get(TOKEN_HEADER), self.server.token, f"the {TOKEN_HEADER} header")
            content_type = self.headers.get("Content-Type", "")
            check_content_type(content_type, self.server.input_kind)
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                raise Refused(411, "Content-Length required") from None
            limit = self.server.max_image_bytes if self.server.input_kind == "image" else 4 * self.server.max_text_chars + 1024
            if length < 0 or length > limit:
                raise Refused(413, f"request too large: {length} bytes; at most {limit}")
            body = self.rfile.read(length)
            if len(body) < length:
                raise Refused(400, f"request body ended after {len(body)} of {length} bytes")
            self.close_connection = False
            request = self.server.parse(body)
            self._json(200, self.server.explain(request))
        except Refused as err:
            self._refuse(err.status, str(err))

    def do_PUT(self) -> None:  # noqa: N802
        self.close_connection = True
        self._refuse(405, "method not allowed")

    do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_PUT


def make_server(
    infer: Callable[[dict], Explained], *, items: list[Explained], title: str, input_kind: str,
    host: str = "127.0.0.1", port: int = 0, max_text_chars: int = 2000, max_image_bytes: int = 8_000_000,
    max_threads: int = 32, idle_timeout: float = 10.0, log: Callable[[str], None] = _log_to_stderr,
) -> ExplorerServer:
    """The bound (not yet serving) server; :func:`serve` runs it until Ctrl-C. Its ``url`` holds a
    fresh token (``server.token``), which the page and the API require."""
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
    if max_text_chars < 1 or max_image_bytes < 1 or max_threads < 1 or not idle_timeout > 0:
        raise AttnlabError("max_text_chars, max_image_bytes and max_threads must be >= 1, idle_timeout > 0")
    blobs = Blobs()
    serve_cfg = {"input_kind": input_kind, "max_text_chars": max_text_chars, "max_image_bytes": max_image_bytes}
    meta = build_meta(items, blobs, title=title, serve=serve_cfg) if items else {
        "version": 1, "title": title, "sets": [{"title": title, "examples": []}], "serve": serve_cfg}
    try:
        return ExplorerServer((host, port), page=render_html(meta, blobs), infer=infer, input_kind=input_kind,
                              max_text_chars=max_text_chars, max_image_bytes=max_image_bytes, token=new_token(),
                              csp=content_security_policy(), max_threads=max_threads, idle_timeout=idle_timeout,
                              log=log)
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
