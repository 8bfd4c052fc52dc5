"""OPTIONS answered with exactly the methods the path serves.

Why not Litestar's own answer: it makes an OPTIONS handler for each group of handlers
it registers on a path, and when it merges the groups of one path it keeps the first
group's handler, whose `Allow` names that group's methods only (OPTIONS /api/keys/{id}
said DELETE, not GET or PATCH). Its guards also applied, so an OPTIONS request without
credentials was refused. A CORS preflight is left to Litestar's CORS middleware."""

from __future__ import annotations

from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Receive, Scope, Send
from litestar.utils import normalize_path


def options_answer(app: Litestar, inner: ASGIApp, *, cors: bool) -> ASGIApp:
    """Wrap `inner` (the app's handler); `cors` says whether preflights go to Litestar."""
    allow_by_handler = {
        id(route.route_handler_map["OPTIONS"][0]): ", ".join(sorted(route.methods)).encode()
        for route in app.routes
        if isinstance(route, HTTPRoute) and "OPTIONS" in route.route_handler_map
    }

    def allowed(path: str) -> bytes | None:
        try:
            _, handler, *_ = app.asgi_router.handle_routing(path=normalize_path(path), method="OPTIONS")
        except Exception:  # unknown path, or no OPTIONS there: Litestar answers it
            return None
        return allow_by_handler.get(id(handler))

    async def answer(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "OPTIONS" and not (cors and _preflight(scope)):
            allow = allowed(scope["path"])
            if allow is not None:
                headers = [(b"allow", allow), (b"content-length", b"0")]
                await send({"type": "http.response.start", "status": 204, "headers": headers})
                await send({"type": "http.response.body", "body": b""})
                return
        await inner(scope, receive, send)

    return answer


def _preflight(scope: Scope) -> bool:
    return any(name == b"access-control-request-method" for name, _ in scope["headers"])
