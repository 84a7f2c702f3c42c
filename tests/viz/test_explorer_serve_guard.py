"""Who may use ``attnlab explore --serve``: only the page it serves, in the user's own browser.

A web page the user visits elsewhere can reach 127.0.0.1 too: by a cross-site ``text/plain`` POST
(no CORS preflight), or by DNS rebinding (its own name pointing at 127.0.0.1). These tests send
those requests over real sockets to a server on an ephemeral port and check each is refused
before the model runs, and that every answer carries the security headers.
"""

from __future__ import annotations

import http.client
import json
import re
import threading

import pytest
import torch

from attnlab.attention.maps import Attentions, Explained
from attnlab.viz.explorer.server import make_server

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def tiny_explained(text: str) -> Explained:
    """Uniform self-attention over the characters of ``text`` (no model needed)."""
    n = len(text)
    a = Attentions()
    a.add("layers.0.self", torch.full((1, 1, n, n), 1 / n), kind="self", axes=("tokens", "tokens"))
    return Explained("bert", a, {"tokens": [list(text)]})


class Calls:
    def __init__(self) -> None:
        self.texts: list[str] = []

    def __call__(self, request: dict) -> Explained:
        self.texts.append(request["text"])
        return tiny_explained(request["text"])


@pytest.fixture(scope="module")
def server():
    srv = make_server(Calls(), items=[tiny_explained("hello")], title="guard", input_kind="text",
                      log=lambda line: None)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def request(srv, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """(status, headers, body) of one request with exactly ``headers`` (Host included unless given)."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        sent = {"Host": f"127.0.0.1:{srv.port}", **(headers or {})}
        if body is not None:
            sent["Content-Length"] = str(len(body))
        for k, v in sent.items():
            if v is not None:
                conn.putheader(k, v)
        conn.endheaders(body)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def post(srv, text: str = "hi", **headers):
    base = {"Content-Type": "application/json", "X-Attnlab-Token": srv.token}
    return request(srv, "POST", "/api/explain", json.dumps({"text": text}).encode(), {**base, **headers})


def page(srv, **headers):
    return request(srv, "GET", f"/?token={srv.token}", headers=headers)


def test_the_printed_url_holds_a_fresh_token(server):
    assert server.url == f"http://127.0.0.1:{server.port}/?token={server.token}" and len(server.token) >= 40
    other = make_server(Calls(), items=[], title="t", input_kind="text")
    other.server_close()
    assert other.token != server.token


@pytest.mark.parametrize("host", ["127.0.0.1:{p}", "localhost:{p}", "LocalHost:{p}", "[::1]:{p}"])
def test_loopback_names_of_this_port_are_served(server, host):
    status, _, body = page(server, Host=host.format(p=server.port))
    assert status == 200 and b"attnlab-meta" in body


@pytest.mark.parametrize("host", ["attacker.example:{p}", "attacker.example", "127.0.0.1", "127.0.0.1:{q}",
                                  "localhost.attacker.example:{p}", "127.0.0.2:{p}", None])
def test_a_foreign_host_is_refused_dns_rebinding(server, host):
    host = host and host.format(p=server.port, q=server.port + 1)
    before = list(server.infer.texts)
    for status, headers, body in (page(server, Host=host), post(server, "rebound", Host=host)):
        assert status == 403 and "is not this server" in json.loads(body)["error"]
        assert headers["Content-Type"] == "application/json"
    assert server.infer.texts == before  # the model never ran


@pytest.mark.parametrize("origin", ["http://attacker.example", "null", "http://127.0.0.1:{q}",
                                    "https://127.0.0.1:{p}", "http://localhost.attacker.example:{p}"])
def test_a_foreign_origin_is_refused(server, origin):
    origin = origin.format(p=server.port, q=server.port + 1)
    before = list(server.infer.texts)
    status, _, body = post(server, "cross-site", Origin=origin)
    assert status == 403 and "may not use this server" in json.loads(body)["error"]
    assert page(server, Origin=origin)[0] == 403
    assert server.infer.texts == before


@pytest.mark.parametrize("origin", [None, "http://127.0.0.1:{p}", "http://localhost:{p}"])
def test_the_pages_own_origin_is_served(server, origin):
    status, _, body = post(server, "own page", Origin=origin and origin.format(p=server.port))
    assert status == 200 and json.loads(body)["examples"][0]["labels"]["tokens"] == list("own page")


def test_the_page_and_the_api_need_the_token(server):
    assert request(server, "GET", "/")[0] == 403
    assert request(server, "GET", "/?token=" + server.token[:-1] + "x")[0] == 403
    assert "?token=" in json.loads(request(server, "GET", "/")[2])["error"]
    before = list(server.infer.texts)
    assert post(server, "no token", **{"X-Attnlab-Token": None})[0] == 403
    assert post(server, "wrong", **{"X-Attnlab-Token": "x" * len(server.token)})[0] == 403
    assert post(server, "non-ascii", **{"X-Attnlab-Token": "\u00e9"})[0] == 403
    body = json.dumps({"text": "in the query"}).encode()
    assert request(server, "POST", f"/api/explain?token={server.token}", body,
                   {"Content-Type": "application/json"})[0] == 403  # the API reads the header only
    assert server.infer.texts == before
    assert post(server, "with token")[0] == 200


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          "text/plain; charset=utf-8", None])
def test_posts_a_cross_site_page_could_send_without_preflight_are_refused(server, content_type):
    before = list(server.infer.texts)
    status, _, body = post(server, "simple request", **{"Content-Type": content_type})
    assert status == 415 and "expected application/json" in json.loads(body)["error"]
    assert server.infer.texts == before


def test_json_with_a_charset_is_json(server):
    assert post(server, "utf8", **{"Content-Type": "application/json; charset=UTF-8"})[0] == 200


def _security_headers_ok(headers: dict, page_csp: str) -> None:
    for k, v in HEADERS.items():
        assert headers.get(k) == v, k
    csp = headers["Content-Security-Policy"]
    assert csp.startswith(page_csp) and "frame-ancestors 'none'" in csp


def test_every_answer_carries_the_security_headers(server):
    status, headers, body = page(server)
    page_csp = re.search(rb'http-equiv="Content-Security-Policy" content="([^"]+)"', body).group(1).decode()
    assert status == 200 and "'unsafe-inline'" not in page_csp.split("script-src", 1)[1].split(";")[0]
    _security_headers_ok(headers, page_csp)
    answers = [
        post(server),                                                     # 200 API
        request(server, "GET", "/"),                                      # 403 token
        page(server, Host="attacker.example"),                            # 403 host
        request(server, "GET", "/nothing"),                               # 404
        post(server, **{"Content-Type": "text/plain"}),                   # 415
        request(server, "PUT", "/api/explain", b"{}"),                    # 405
        request(server, "OPTIONS", "/api/explain"),                       # 405: no CORS preflight is granted
        request(server, "GET", "/favicon.ico"),                           # 204
    ]
    assert [a[0] for a in answers] == [200, 403, 403, 404, 415, 405, 405, 204]
    for _status, headers, _ in answers:
        _security_headers_ok(headers, page_csp)
        assert "Access-Control-Allow-Origin" not in headers
