"""The two routes the real client calls for every item it reads or writes,
`GET /api/objects/{id}` and `PUT|POST /api/objects`, answered ahead of Litestar's router.

Why: for these requests Litestar's per-request machinery (routing, the Request, guards,
dependency injection, building the response) costs more server CPU than the read or the
write itself (benchmarks/README.md). A request of the common shape is served here, by
the same access rule (`admit`), service functions and error answers as the Litestar
routes. Every other request goes on to those routes, which stay the reference: they
answer a session cookie, a browser request (an `Origin` header: CORS is Litestar's), a
body declared as anything but JSON (415) or not JSON of the right shape, a missing or
oversized Content-Length, and they describe both routes in the OpenAPI schema. Nothing
is answered twice: a request passed on has not been answered, and its body is handed
on as it arrived."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from telentir_box.auth.guards import admit, header_token
from telentir_box.auth.principal import Principal
from telentir_box.box import Box
from telentir_box.ids import is_valid_id
from telentir_box.store import objects
from telentir_box.store.models import ObjectRecord, ObjectWrite
from telentir_box.web.csrf import is_json_type
from telentir_box.web.errors import error_answer

_OBJECTS = "/api/objects"
_ONE_OBJECT = _OBJECTS + "/"
_encode = msgspec.json.Encoder().encode
_decode_write = msgspec.json.Decoder(ObjectWrite).decode


def object_hot_path(app: ASGIApp, get_box: Callable[[], Box]) -> ASGIApp:
    """Wrap Litestar's ASGI handler `app`; `get_box` gives the running Box."""

    async def hot_path(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(_OBJECTS):
            path, method, token = scope["path"], scope["method"], _plain_bearer(scope)
            if token is not None and method == "GET" and path.startswith(_ONE_OBJECT):
                object_id = path.removeprefix(_ONE_OBJECT)
                if is_valid_id(object_id):
                    await _get_object(get_box(), token, object_id, scope, send)
                    return
            if token is not None and method in ("PUT", "POST") and path == _OBJECTS:
                box = get_box()
                length = _content_length(scope)
                fits = length is not None and length <= box.config.server.max_body_bytes
                if fits and _json_or_untyped(scope):
                    await _create_object(box, token, scope, receive, send, app)
                    return
        await app(scope, receive, send)

    return hot_path


async def _get_object(box: Box, token: str, object_id: str, scope: Scope, send: Send) -> None:
    try:
        principal = await _caller(box, token, scope)
        record = await objects.get_object(box.db, principal.user_id, object_id)
    except Exception as exc:  # every failure gets the one error format
        await _answer_error(exc, scope, send)
        return
    await _answer(send, 200, _encode(record))


async def _create_object(
    box: Box, token: str, scope: Scope, receive: Receive, send: Send, app: ASGIApp
) -> None:
    record: ObjectRecord | None = None
    try:
        principal = await _caller(box, token, scope)  # before the body is read, as a guard
        body = await _read_body(receive)
        if body is None:
            return  # the client went away
        write = _decoded(body)
        if write is not None:
            record = await objects.create_object(box.db, principal.user_id, write, box.config.store)
    except Exception as exc:
        await _answer_error(exc, scope, send)
        return
    if record is None:
        # Litestar's route words the validation error; it finds the caller already resolved.
        await app(scope, _replay(body, receive), send)
        return
    await _answer(send, 201, _encode(record))


def _decoded(body: bytes) -> ObjectWrite | None:
    try:
        return _decode_write(body)
    except (msgspec.DecodeError, RecursionError):
        return None


async def _caller(box: Box, token: str, scope: Scope) -> Principal:
    """The caller admitted as `requires_object_auth` admits it; kept in the request state
    like `current_principal` does, so a request passed on is not resolved twice."""
    principal = await box.authenticator.resolve(token)
    scope.setdefault("state", {})["principal"] = principal
    if principal is not None:
        box.budget.spend(principal)  # the same budget the Litestar routes charge
    return admit(principal, phone=True)


def _plain_bearer(scope: Scope) -> str | None:
    """The bearer token of a request that is not a browser's cross-origin call."""
    for name, _ in scope["headers"]:
        if name == b"origin":
            return None
    return header_token(scope)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def _json_or_untyped(scope: Scope) -> bool:
    """A body the routes read as JSON: declared so, or untyped (this request has a bearer)."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value == b"application/json" or is_json_type(value.decode("latin-1"))
    return True


async def _read_body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """`receive` for a request passed on after its body was read: the body once, as one
    message, then whatever the connection says next (a disconnect)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()  # type: ignore[return-value]

    return replay


async def _answer_error(exc: Exception, scope: Scope, send: Send) -> None:
    status, body, headers = error_answer(exc, scope)
    extra = [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in (headers or {}).items()
    ]
    await _answer(send, status, _encode(body), extra)


async def _answer(
    send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(extra or ()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
