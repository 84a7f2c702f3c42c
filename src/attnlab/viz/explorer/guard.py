"""Who may talk to ``attnlab explore --serve``: the checks every request passes, and the headers
every response carries.

The server binds a loopback address, but a web page the user visits elsewhere runs in the same
browser and can reach it. Four checks keep such a page out (docs/reliability.md, "Live server
security model"):

* **Host** must be ``127.0.0.1:PORT``, ``localhost:PORT`` or ``[::1]:PORT`` (DNS rebinding points
  a foreign name at 127.0.0.1; its requests carry that name);
* **Origin**, when the browser sends one, must be ``http://`` + one of those hosts;
* **a per-run token** (``secrets.token_urlsafe``) is in the URL the command prints: ``GET /``
  needs ``?token=...``, the API needs the ``X-Attnlab-Token`` header the page's script sends
  (a custom header: a cross-site request cannot send it without a CORS preflight, which the server
  never grants); compared in constant time;
* **Content-Type** of a POST must be one a cross-site ``<form>`` or ``fetch`` cannot send without
  a preflight: ``application/json`` (text, graph) or the image's type (image servers).

Every response carries ``Content-Security-Policy`` (the page's own, plus ``frame-ancestors 'none'``),
``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``, ``Referrer-Policy: no-referrer``.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping

TOKEN_HEADER = "X-Attnlab-Token"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
IMAGE_TYPES = ("image/", "application/octet-stream")


class Refused(Exception):
    """A request answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def new_token() -> str:
    """A fresh per-run secret: 32 random bytes, URL-safe (as Jupyter's)."""
    return secrets.token_urlsafe(32)


def security_headers(page_csp: str) -> dict[str, str]:
    """The headers every response carries; ``page_csp`` is the policy the page itself declares."""
    return {
        "Content-Security-Policy": f"{page_csp}; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


def check_host(headers: Mapping[str, str], port: int) -> None:
    """403 unless Host names this server by a loopback name and its port, and Origin (if sent) too."""
    allowed = {f"{name}:{port}" for name in LOOPBACK_NAMES}
    host = (headers.get("Host") or "").strip().lower()
    if host not in allowed:
        raise Refused(403, f"Host {host or '(none)'!r} is not this server: open http://127.0.0.1:{port}/ "
                           "(the URL the command printed)")
    origin = headers.get("Origin")
    if origin is not None and origin.strip().lower() not in {f"http://{h}" for h in allowed}:
        raise Refused(403, f"Origin {origin!r} may not use this server: only its own page may")


def check_token(given: str | None, token: str, where: str) -> None:
    """403 unless ``given`` is the run's token (constant-time comparison)."""
    if not given or not hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("ascii")):
        raise Refused(403, f"missing or wrong token ({where}): open the URL the command printed, "
                           "which ends in ?token=...")


def check_content_type(content_type: str, input_kind: str) -> None:
    """415 unless a POST's Content-Type is one a cross-site page cannot send without a preflight."""
    media = content_type.split(";", 1)[0].strip().lower()
    if input_kind == "image":
        if media == "application/json":
            raise Refused(415, "send the image's bytes (Content-Type image/png or image/jpeg), not JSON")
        if not media.startswith(IMAGE_TYPES):
            raise Refused(415, f"Content-Type {media or '(none)'!r}: expected an image type such as image/png")
    elif media != "application/json":
        raise Refused(415, f"Content-Type {media or '(none)'!r}: expected application/json")
