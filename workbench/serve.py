"""`workbench serve`: the TUI in a browser through textual-serve, behind a token as Jupyter does it.

Loopback is open to every user of the machine, and the served app can start presets whose `custom`
targets run Python as the serving user. So every request (the page, the websocket, static files,
downloads) needs the token: once in the URL's query (`?token=...`), which sets a cookie, then the cookie.
Anything else gets 403. The token is random per start unless given (`WORKBENCH_TOKEN`, or `--token`),
compared in constant time, shown only in the URL printed at start, and kept out of the access log.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import sys
from typing import Any
from urllib.parse import quote

TOKEN_ENV = "WORKBENCH_TOKEN"
FORBIDDEN = "workbench serve: open the URL with the token that `workbench serve` printed when it started"


def new_token() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


def cookie_name(port: int) -> str:
    # Cookies are per host, not per port: two servers on one machine must not overwrite each other's.
    return f"workbench-token-{port}"


def token_matches(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8"))


def page_url(host: str, port: int, token: str | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={quote(token, safe='')}" if token else "")


def token_middleware(token: str, port: int):
    """aiohttp middleware: the query's token sets the cookie; the cookie admits; nothing else does."""
    from aiohttp import web

    name = cookie_name(port)

    @web.middleware
    async def require_token(request: web.Request, handler: Any):
        if token_matches(request.query.get("token"), token):
            response = await handler(request)
            if not response.prepared:  # a websocket has sent its headers already; it needs no cookie
                response.set_cookie(name, token, httponly=True, samesite="Strict", path="/")
            return response
        if token_matches(request.cookies.get(name), token):
            return await handler(request)
        raise web.HTTPForbidden(text=FORBIDDEN)

    return require_token


def make_server(command: str, host: str, port: int, token: str | None, title: str = "Workbench"):
    """A textual-serve Server that asks for `token` (None: no token, only after the caller's warning)."""
    from textual_serve.server import Server

    class TokenServer(Server):
        async def _make_app(self):
            app = await super()._make_app()
            if token is not None:
                app.middlewares.append(token_middleware(token, port))
            return app

        def initialize_logging(self) -> None:
            super().initialize_logging()
            logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # its lines carry the query: the token

        async def on_startup(self, app) -> None:
            print(f"serving the workbench TUI on {page_url(host, port, token)} (Ctrl+C to stop)", file=sys.stderr,
                  flush=True)

    return TokenServer(command, host=host, port=port, title=title)
