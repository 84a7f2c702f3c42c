"""``attnlab explore --serve`` under load and bad input, over real sockets to a server on an
ephemeral port: a full listen backlog, bounded threads, idle clients dropped, every bad request a
4xx JSON answer and one log line, hang-ups quiet, and no spinning when file descriptors run out.
"""

from __future__ import annotations

import errno
import json
import re
import socket
import struct
import sys
import threading
import time
from pathlib import Path

import pytest

from attnlab.viz.explorer.server import make_server

sys.path.insert(0, str(Path(__file__).parent))
from test_explorer_serve_guard import Calls, post, request, tiny_explained  # noqa: E402


class SlowCalls(Calls):
    """``Calls`` that takes a moment when the text says "slow" (time for a client to hang up)."""

    def __call__(self, request: dict):
        if "slow" in request["text"]:
            time.sleep(0.1)
        return super().__call__(request)


def start(**options):
    log: list[str] = []
    srv = make_server(SlowCalls(), items=[tiny_explained("hello")], title="load", input_kind="text",
                      log=log.append, **options)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return srv, log


@pytest.fixture
def served():
    made = []

    def make(**options):
        made.append(start(**options))
        return made[-1]

    yield make
    for srv, _ in made:
        srv.shutdown()
        srv.server_close()


def raw(srv, data: bytes) -> bytes:
    """Send ``data`` on a fresh connection; everything the server answers before closing it."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _json_body(bodies: list[bytes]) -> tuple[int, str]:
    status, _, body = bodies
    return status, json.loads(body)["error"]


@pytest.mark.parametrize("body, message", [
    (b'{"text": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested too deeply"),
    (b'{"text": 1' + b"0" * 5000 + b"}", "digits"),                     # over int's 4,300-digit limit
    (b'{"text": "a\\ud800b"}', "lone surrogate"),
    (b'{"text": "\\udfff"}', "lone surrogate"),
    (b"\xed\xa0\x80", "malformed JSON"),                                 # a surrogate encoded in UTF-8
])
def test_bad_json_is_a_400_and_one_log_line(served, capfd, body, message):
    srv, log = served(max_text_chars=3000)
    status, error = _json_body(request(srv, "POST", "/api/explain", body,
                                       {"Content-Type": "application/json", "X-Attnlab-Token": srv.token}))
    assert status == 400 and message in error
    assert len(log) == 1 and log[0].startswith("attnlab explore: 400 POST /api/explain:") and message in log[0]
    assert post(srv, "still serving")[0] == 200 and srv.infer.texts == ["still serving"]
    assert "Traceback" not in capfd.readouterr().err


def test_too_large_bodies_and_broken_requests_are_4xx_json(served, capfd):
    srv, log = served(max_text_chars=10)
    headers = {"Content-Type": "application/json", "X-Attnlab-Token": srv.token}
    status, error = _json_body(request(srv, "POST", "/api/explain", b"x" * 2000, headers))
    assert status == 413 and "at most 1064" in error
    answers = [
        raw(srv, b"GARBAGE\r\n\r\n"),                                              # bad request line
        raw(srv, b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n"),                  # request line too long
        raw(srv, b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(120)) + b"\r\n"),
        raw(srv, b"POST /api/explain HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                 b"X-Attnlab-Token: %s\r\nContent-Length: 50\r\n\r\n{\"te" % (srv.port, srv.token.encode())),
    ]
    for answer in answers:
        head, _, body = answer.partition(b"\r\n\r\n")
        assert re.match(rb"HTTP/1\.[01] 4\d\d ", head) and b"X-Frame-Options: DENY" in head, head[:80]
        assert "error" in json.loads(body)
    assert len(log) == 1 + len(answers)  # one line each
    assert "Traceback" not in capfd.readouterr().err


def test_clients_that_hang_up_are_not_errors(served, capfd):
    srv, log = served()
    body = json.dumps({"text": "slow"}).encode()
    for _ in range(10):  # the client resets the connection while the model runs: the answer hits a closed socket
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.sendall(b"POST /api/explain HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                  b"X-Attnlab-Token: %s\r\nContent-Length: %d\r\n\r\n%s" % (srv.port, srv.token.encode(), len(body), body))
        time.sleep(0.02)
        s.close()
    assert post(srv, "after the hang-ups")[0] == 200  # the lock serialises: every slow call has ended
    assert srv.infer.texts.count("slow") == 10
    assert log == [] and "Traceback" not in capfd.readouterr().err


def test_idle_and_slow_clients_are_dropped(served):
    srv, log = served(idle_timeout=0.5)
    for sent in (b"", b"GET / HTTP/1.1\r\nHost: 127.0.0.1"):  # silent; stops halfway through the headers
        with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as s:
            s.sendall(sent)
            assert s.recv(100) == b""  # the server closed it (a client timeout here: never)
    assert log == []


def test_threads_are_bounded_and_the_rest_wait(served):
    srv, _ = served(max_threads=3, idle_timeout=1.0)
    idle = [socket.create_connection(("127.0.0.1", srv.port), timeout=30) for _ in range(6)]
    try:
        assert post(srv, "waited for a free thread")[0] == 200
    finally:
        for s in idle:
            s.close()
    assert srv.most_busy == 3


def test_a_burst_waits_in_the_backlog(served):
    """128 connections queue while the server is not accepting (a backlog of 5 took about 6);
    then each is answered."""
    srv, _ = served(max_threads=4)
    srv.slots.acquire()  # hold every thread slot: the accept loop waits, connections queue in the kernel
    for _ in range(3):
        srv.slots.acquire()
    conns = []
    try:
        for _ in range(100):
            s = socket.socket()
            s.settimeout(3)
            s.connect(("127.0.0.1", srv.port))  # a full backlog drops the SYN: a timeout here
            conns.append(s)
    finally:
        for _ in range(4):
            srv.slots.release()
    body = json.dumps({"text": "queued"}).encode()
    for s in conns:
        s.settimeout(30)
        s.sendall(b"POST /api/explain HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                  b"X-Attnlab-Token: %s\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
                  % (srv.port, srv.token.encode(), len(body), body))
    answered = []
    for s in conns:
        with s:
            answered.append(s.makefile("rb").readline().split(b" ")[1])
    assert answered == [b"200"] * 100


class OutOfDescriptors:
    """The listening socket, except that ``accept`` fails with EMFILE ``failures`` times."""

    def __init__(self, sock: socket.socket, failures: int) -> None:
        self.sock, self.failures = sock, failures

    def fileno(self) -> int:
        return self.sock.fileno()

    def accept(self):
        if self.failures:
            self.failures -= 1
            raise OSError(errno.EMFILE, "Too many open files")
        return self.sock.accept()

    def close(self) -> None:
        self.sock.close()


def test_running_out_of_file_descriptors_backs_off_instead_of_spinning():
    log: list[str] = []
    srv = make_server(SlowCalls(), items=[], title="fds", input_kind="text", log=log.append)
    pauses: list[float] = []
    srv._pause = pauses.append
    srv.socket = OutOfDescriptors(srv.socket, failures=7)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        assert post(srv, "after EMFILE")[0] == 200  # the pending client is accepted once descriptors are back
    finally:
        srv.shutdown()
        srv.server_close()
    assert pauses == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]  # doubling, at most a second, per failed accept
    assert len(log) == 1 and "Too many open files" in log[0]
