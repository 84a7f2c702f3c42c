"""``serve``: live inference behind the explorer page, on 127.0.0.1 only.

The server answers typed input with the same attention as the Python API, turns bad input into
a JSON error and keeps running, runs one inference at a time, and stops cleanly on Ctrl-C.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import pytest
import torch

from attnlab.attention.maps import Explained
from attnlab.errors import AttnlabError
from attnlab.viz.explorer.server import make_server

sys.path.insert(0, str(Path(__file__).parent))
from browser import _as_attentions, launch, open_page, vit_case  # noqa: E402

VOCAB, CONTEXT = 64, 48


def _model():
    from attnlab.models import GPT
    from attnlab.models.gpt import GPTConfig

    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=VOCAB, context_length=CONTEXT, num_layers=2, num_heads=2, d_model=16,
                         dropout=0.0, attention_dropout=0.0)).eval()


class Infer:
    """Character-level GPT inference; counts how many calls overlap (must stay 1)."""

    def __init__(self) -> None:
        self.model, self.active, self.most = _model(), 0, 0

    def __call__(self, request: dict) -> Explained:
        self.active += 1
        self.most = max(self.most, self.active)
        try:
            text = request["text"]
            if text == "boom":
                raise RuntimeError("the model fell over")
            if len(text) > CONTEXT:
                raise AttnlabError(f"text: {len(text)} characters; the model reads at most {CONTEXT}")
            time.sleep(0.02)  # long enough for concurrent requests to overlap without the lock
            ids = torch.tensor([[ord(c) % VOCAB for c in text]])
            with torch.no_grad():
                out = self.model(ids, need_weights=True)
            attn = _as_attentions(out.attentions, "layers.{i}.causal", "causal", ("tokens", "tokens"))
            return Explained("gpt", attn, {"tokens": [list(text)]})
        finally:
            self.active -= 1


@pytest.fixture(scope="module")
def server():
    infer = Infer()
    srv = make_server(infer, items=[infer({"text": "hello"})], title="live", input_kind="text", max_text_chars=200)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    srv.infer_obj = infer
    yield srv
    srv.shutdown()
    srv.server_close()


def _post(srv, body: bytes, content_type: str = "application/json", headers: dict | None = None):
    """POST ``body`` to ``srv``'s API as the page does (its token in the header)."""
    req = urllib.request.Request(srv.base_url + "api/explain", data=body, method="POST",
                                 headers={"Content-Type": content_type, "X-Attnlab-Token": srv.token, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _png_bytes() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def _weights(answer: dict, m: int, h: int) -> torch.Tensor:
    d = answer["examples"][0]["maps"][m]
    q = zlib.decompress(base64.b64decode(answer["blobs"][d["data"][h]]))
    scale = zlib.decompress(base64.b64decode(answer["blobs"][d["scale"]]))
    q = torch.frombuffer(bytearray(q), dtype=torch.uint8).view(d["lq"], d["lk"]).float()
    scale = torch.frombuffer(bytearray(scale), dtype=torch.float32).view(d["heads"], d["lq"])[h]
    return q / 255 * scale[:, None]


def test_typed_text_gets_the_attention_of_the_python_api(server):
    status, answer = _post(server, json.dumps({"text": "attention!"}).encode())
    assert status == 200 and answer["examples"][0]["labels"]["tokens"] == list("attention!")
    expected = server.infer_obj({"text": "attention!"}).attentions
    for m in range(2):
        for h in range(2):
            want = expected[m][0, h]
            assert torch.allclose(_weights(answer, m, h), want, atol=want.max().item() / 500)


@pytest.mark.parametrize("body, content_type, status, message", [
    (b"{not json", "application/json", 400, "malformed JSON"),
    (b"[1, 2]", "application/json", 400, "expected a JSON object"),
    (b'{"text": 3}', "application/json", 400, "non-empty string"),
    (b'{"text": "   "}', "application/json", 400, "non-empty string"),
    (json.dumps({"text": "x" * 201}).encode(), "application/json", 400, "at most 200"),
    (json.dumps({"text": "y" * 60}).encode(), "application/json", 400, "at most 48"),  # the model's own AttnlabError
    (b'{"text": "boom"}', "application/json", 500, "RuntimeError: the model fell over"),
    (b"\xff\xfe", "application/json", 400, "malformed JSON"),
])
def test_bad_input_gets_a_clear_error_and_the_server_keeps_running(server, body, content_type, status, message):
    got, answer = _post(server, body, content_type)
    assert got == status and message in answer["error"]
    assert _post(server, b'{"text": "still here"}')[0] == 200


def test_oversized_requests_and_unknown_paths(server):
    status, answer = _post(server, b"{}", headers={"Content-Length": str(10**9)})
    assert status == 413 and "too large" in answer["error"]
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(server.url.replace("/?", "/etc/passwd?"), timeout=10)
    assert err.value.code == 404
    req = urllib.request.Request(server.base_url + "api/other", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 404
    assert _post(server, b'{"text": "fine"}')[0] == 200


def test_concurrent_requests_share_one_model_one_at_a_time(server):
    results = []
    threads = [threading.Thread(target=lambda k=k: results.append(_post(server, json.dumps({"text": f"req {k}"}).encode())[0]))
               for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert results == [200] * 6 and server.infer_obj.most == 1


def test_the_page_explains_typed_input_in_the_browser(server):
    pw, browser = launch()
    try:
        o = open_page(browser, server.url, allow_prefix=server.base_url)
        o.page.fill("#serve-input", "")
        o.page.click("#serve-go")
        o.wait("() => document.getElementById('error').textContent.includes('non-empty')")
        o.page.fill("#serve-input", "the cat sat")
        o.page.click("#serve-go")
        o.wait("() => attnlab.meta.sets[0].examples.length === 2 && attnlab.state.e === 1")
        expected = server.infer_obj({"text": "the cat sat"}).attentions[1][0, 1]
        for i, j in [(0, 0), (10, 3), (6, 6)]:
            got = o.eval(f"attnlab.value(0, 1, 1, 1, {i}, {j})")
            assert got == pytest.approx(expected[i, j].item(), abs=expected[i].max().item() / 500)
        o.set({"v": "matrix"})
        assert o.errors == [] and o.blocked == []
        empty = make_server(server.infer_obj, items=[], title="empty", input_kind="text")  # no startup example
        threading.Thread(target=empty.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        try:
            e = open_page(browser, empty.url, allow_prefix=empty.base_url)
            e.page.fill("#serve-input", "first")
            e.page.click("#serve-go")
            e.wait("() => attnlab.meta.sets[0].examples.length === 1 && document.querySelector('#map').options.length === 2")
            assert e.errors == [] and e.blocked == []
        finally:
            empty.shutdown()
            empty.server_close()
        seen = []
        images = make_server(lambda r: seen.append(r["image_bytes"]) or vit_case(), items=[], title="vit", input_kind="image")
        threading.Thread(target=images.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        try:
            v = open_page(browser, images.url, allow_prefix=images.base_url)
            png = _png_bytes()
            v.page.set_input_files("#serve-input", files=[{"name": "cat.png", "mimeType": "image/png", "buffer": png}])
            v.page.click("#serve-go")
            v.wait("() => attnlab.state.v === 'image' && document.body.dataset.ready === '1'")
            assert seen == [png] and v.errors == [] and v.blocked == []
        finally:
            images.shutdown()
            images.server_close()
    finally:
        browser.close()
        pw.stop()


def test_image_servers_check_the_bytes():
    srv = make_server(lambda r: (_ for _ in ()).throw(AttnlabError("unused")), items=[], title="img",
                      input_kind="image", max_image_bytes=1000)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        assert _post(srv, b"plain text, not an image", "image/png")[1]["error"].startswith("not an image")
        assert _post(srv, b"\x89PNG\r\n\x1a\n" + b"0" * 2000, "image/png")[0] == 413
        assert "not JSON" in _post(srv, b"{}", "application/json")[1]["error"]
        assert _post(srv, b"\x89PNG\r\n\x1a\n0000", "image/png") == (400, {"error": "unused"})
    finally:
        srv.shutdown()
        srv.server_close()


def test_only_loopback_and_known_input_kinds():
    with pytest.raises(AttnlabError, match="this machine only"):
        make_server(lambda r: None, items=[], title="t", input_kind="text", host="0.0.0.0")
    with pytest.raises(AttnlabError, match="input_kind"):
        make_server(lambda r: None, items=[], title="t", input_kind="audio")


def test_ctrl_c_stops_serve_cleanly(tmp_path):
    script = (
        "from attnlab.viz.explorer import serve\n"
        "serve(lambda r: None, items=[], title='t', input_kind='text', ready=lambda url: print(url, flush=True))\n"
        "print('stopped', flush=True)\n"
    )
    # a test runner's worker may run with SIGINT ignored, and an ignored signal is inherited:
    # the child starts with the default disposition, as a user's terminal gives it
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url, timeout=10) as r:
            assert b"attnlab-meta" in r.read()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == 0 and out.strip() == "stopped" and "Traceback" not in err
