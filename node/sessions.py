"""Sessions: Basic credentials or a signed challenge exchanged for a Bearer token;
revocation; secret rotation without downtime."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from node.request_body import read_body, read_json
from node.responses import NEEDS_CREDENTIALS, json_response
from node.state import NodeState, node_state
from registry.errors import AuthenticationRequired, InvalidValue, NotAuthorised
from registry.identifier import Identity
from registry.permission import administers
from registry.session import SessionStore

router = APIRouter(tags=["Sessions"])
State = Annotated[NodeState, Depends(node_state)]
_AUTH: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed body (202)"},
    401: {"description": "Credentials, token, challenge or signature refused (402)"},
}
MAX_GRACE = 7 * 86400


def _sessions(state: NodeState) -> SessionStore:
    sessions = state.registrar.sessions
    assert sessions is not None
    return sessions


def _text_field(body: object, name: str) -> str:
    value = body.get(name) if isinstance(body, dict) else None
    if not isinstance(value, str) or not value or len(value) > 1024:
        raise InvalidValue(f"the body needs a {name!r} string")
    return value


@router.post(
    "/api/sessions",
    summary="Log in: get a Bearer token",
    status_code=201,
    responses=_AUTH,
    openapi_extra={"security": [{"basic": []}, {}]},  # Basic, or a signed challenge body
)
async def open_session(request: Request, state: State) -> Response:
    """Either HTTP Basic credentials (no body), or a signed challenge as the body:
    ``{"identity": "300:88.100.1/devices/plc-7", "nonce": N, "signature": S}`` (see
    ``POST /api/sessions/challenge``). Answers ``{"token", "identity", "expiresIn"}``;
    send ``Authorization: Bearer <token>`` afterwards."""
    raw = await read_body(request)
    if raw.strip():
        body = await read_json(request)
        identity = await state.registrar.login_with_signature(
            _text_field(body, "identity"),
            _text_field(body, "nonce"),
            _text_field(body, "signature"),
        )
    else:
        header = request.headers.get("authorization") or ""
        if not header.lower().startswith("basic "):
            raise AuthenticationRequired("Log in with HTTP Basic credentials or a signed challenge")
        identity = await state.authenticate(request)
    session = await _sessions(state).open(identity)
    return json_response(
        {
            "responseCode": 1,
            "token": session.token,
            "identity": identity.text,
            "expiresIn": session.expires_in,
        },
        201,
    )


@router.post(
    "/api/sessions/challenge", summary="Get a nonce to sign with a public key", responses=_AUTH
)
async def new_challenge(request: Request, state: State) -> Response:
    """Body ``{"identity": "<index>:<handle>"}``, an identity holding an ``HS_PUBKEY``
    value (``sm2:<hex>`` or ``ed25519:<hex>``) at that index. Answers ``{"nonce",
    "expiresIn", "sign"}``: sign the bytes of ``sign`` (``idnode-login\\n<identity>\\n<nonce>``)
    and send the signature to ``POST /api/sessions`` before the nonce expires."""
    identity = Identity.parse(_text_field(await read_json(request), "identity"))
    if await state.registrar.public_key(identity) is None:
        raise AuthenticationRequired(f"{identity.text} holds no public key at this node")
    sessions = _sessions(state)
    nonce = await sessions.new_challenge(identity)
    return json_response(
        {
            "responseCode": 1,
            "nonce": nonce,
            "expiresIn": sessions.challenge_ttl,
            "sign": f"idnode-login\n{identity.text}\n{nonce}",
        }
    )


@router.delete(
    "/api/sessions",
    summary="Log out, or end every session of an identity",
    responses=_AUTH,
    openapi_extra=NEEDS_CREDENTIALS,
)
async def close_session(request: Request, state: State, identity: str | None = None) -> Response:
    """With a Bearer token and no parameter: ends that session. With ``identity``: ends
    every session of that identity; allowed to the identity itself and to the
    administrator of a prefix above it."""
    header = request.headers.get("authorization") or ""
    caller = await state.authenticate(request)
    sessions = _sessions(state)
    if identity is None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            raise InvalidValue("give ?identity=... or log out with the Bearer token itself")
        await sessions.revoke(token.strip())
        return json_response({"responseCode": 1, "revoked": 1})
    target = Identity.parse(identity)
    if target.key != caller.key and not administers(caller, target.handle.home_prefix):
        raise NotAuthorised(f"{caller.text} may not end the sessions of {target.text}")
    return json_response({"responseCode": 1, "revoked": await sessions.revoke_all(target)})


@router.put(
    "/api/secrets/{identity:path}",
    summary="Rotate an identity's secret without downtime",
    responses={**_AUTH, 403: {"description": "May not change that identity's secret (400)"}},
    openapi_extra=NEEDS_CREDENTIALS,
)
async def rotate_secret(identity: str, request: Request, state: State) -> Response:
    """Body ``{"secret": NEW, "graceSeconds": N}`` (N up to a week, default 3600): the new
    secret works at once, the old one for N more seconds, and open sessions stay valid.
    Allowed to the identity itself and to identities with the right to modify the value
    holding it (the administrator of its prefix)."""
    caller = await state.authenticate(request)
    body = await read_json(request)
    secret = _text_field(body, "secret")
    if not 8 <= len(secret) <= 256:
        raise InvalidValue("'secret' must be 8 to 256 characters")
    grace = body.get("graceSeconds", 3600) if isinstance(body, dict) else 3600
    if type(grace) is not int or not 0 <= grace <= MAX_GRACE:
        raise InvalidValue(f"'graceSeconds' must be an integer from 0 to {MAX_GRACE}")
    target = Identity.parse(identity)
    state.registrar.check_held(target.handle)
    await state.registrar.rotate_secret(caller, target, secret, grace)
    return json_response({"responseCode": 1, "identity": target.text, "graceSeconds": grace})
