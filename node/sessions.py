"""Sessions as the Handle REST API has them, Bearer tokens besides; revocation; secret
rotation without downtime.

Handle's flow: ``POST /api/sessions`` answers ``{"sessionId", "nonce"}`` (201, Location
``/api/sessions/this``); ``PUT /api/sessions/this`` with ``Authorization: Handle
sessionId=..., id=..., type=HS_PUBKEY, alg=..., cnonce=..., signature=...`` (or the same
as JSON members) authenticates it; later requests send ``Authorization: Handle
sessionId="..."``; ``GET`` shows it and ``DELETE`` ends it. The session id is also a
Bearer token (:mod:`registry.session`); what is signed: :mod:`registry.authorization`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from node.request_body import read_body, read_json
from node.responses import NEEDS_CREDENTIALS, json_response
from node.state import NodeState, node_state
from registry import authorization
from registry.errors import AuthenticationRequired, InvalidValue, NotAuthorised
from registry.identifier import Identity
from registry.permission import administers
from registry.session import SessionState, SessionStore

router = APIRouter(tags=["Sessions"])
State = Annotated[NodeState, Depends(node_state)]
_AUTH: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed body (202)"},
    401: {"description": "Credentials, token, challenge or signature refused (402)"},
}
_THIS: dict[int | str, dict[str, Any]] = {
    **_AUTH,
    401: {"description": "Unknown, expired or ended session; answer refused (402)"},
    429: {"description": "Too many requests (2)"},
}
MAX_GRACE = 7 * 86400
SessionIdParam = Annotated[
    str | None,
    Query(
        alias="sessionId",
        max_length=256,
        description="the session, when no Authorization: Handle header names it",
    ),
]


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
    summary="Open a session (Handle), or log in for a Bearer token",
    status_code=201,
    responses={
        **_AUTH,
        201: {"description": "The session: sessionId, nonce, authenticated (1)"},
        429: {"description": "Too many sessions opened without credentials (2)"},
    },
    openapi_extra={"security": [{"basic": []}, {}]},  # Basic, a signed body, or none
)
async def open_session(request: Request, state: State) -> Response:
    """As Handle: without credentials, a new session to authenticate with
    ``PUT /api/sessions/this``, answered ``{"sessionId", "nonce", "authenticated":
    false, "expiresIn"}``; it lasts a minute unless authenticated, and one address may
    open a limited number a minute (429 past it).

    With HTTP Basic credentials, or a body signed for ``POST /api/sessions/challenge``
    (``{"identity", "nonce", "signature"}``), the session is authenticated at once and
    the answer also carries the Bearer fields ``{"token", "identity", "expiresIn"}``;
    ``token`` is the ``sessionId``. Send ``Authorization: Bearer <token>`` or
    ``Authorization: Handle sessionId="<sessionId>"`` afterwards."""
    raw = await read_body(request)
    header = (request.headers.get("authorization") or "").strip()
    sessions = _sessions(state)
    if raw.strip():
        body = await read_json(request)
        identity = await state.registrar.login_with_signature(
            _text_field(body, "identity"),
            _text_field(body, "nonce"),
            _text_field(body, "signature"),
        )
    elif header.lower().startswith("basic "):
        identity = await state.authenticate(request)
    elif authorization.is_handle_scheme(header):
        # Handle answers 400 to a POST naming a session: open one first, then answer.
        raise InvalidValue(
            "POST /api/sessions opens a new session; authenticate one with PUT /api/sessions/this"
        )
    elif header:
        raise AuthenticationRequired("Log in with HTTP Basic credentials or a signed challenge")
    else:
        client = request.client
        token, nonce = await sessions.begin(client.host if client else "unknown")
        answer = _representation(token, SessionState(nonce, None), sessions.pending_ttl)
        return _created(answer)
    session = await sessions.open(identity)
    answer = _representation(
        session.token, SessionState(session.nonce, identity), session.expires_in
    )
    answer.update({"token": session.token, "identity": identity.text})
    return _created(answer)


def _created(body: dict[str, Any]) -> Response:
    response = json_response(body, 201)
    response.headers["Location"] = "/api/sessions/this"
    return response


def _representation(token: str, session: SessionState, expires_in: int) -> dict[str, Any]:
    """A session as Handle shows it, plus responseCode and expiresIn."""
    body: dict[str, Any] = {
        "responseCode": 1,
        "sessionId": token,
        "nonce": session.nonce,
        "authenticated": session.identity is not None,
    }
    if session.identity is not None:
        body["id"] = session.identity.text
    body["expiresIn"] = expires_in
    return body


def _named_session(request: Request, fields: dict[str, str]) -> str:
    """The session a request to /api/sessions/this is about: ``Authorization: Handle
    sessionId=...``, a Bearer token, or a ``sessionId`` parameter or JSON member."""
    header = (request.headers.get("authorization") or "").strip()
    scheme, _, rest = header.partition(" ")
    if authorization.is_handle_scheme(header):
        named = authorization.parse(header).session_id
        if named:
            return named
    elif scheme.lower() == "bearer" and rest.strip():
        return rest.strip()
    named = fields.get("sessionId")
    if not named:
        raise AuthenticationRequired(
            'Name the session: Authorization: Handle sessionId="...", a Bearer token, '
            "or a sessionId parameter (POST /api/sessions opens one)"
        )
    return named


async def _known(state: NodeState, token: str) -> SessionState:
    found = await _sessions(state).state(token)
    if found is None:
        raise AuthenticationRequired("The session is unknown, expired or ended")
    return found


async def _body_fields(request: Request) -> dict[str, str]:
    """Handle parameters sent as JSON members (Handle reads them from the entity too)."""
    raw = await read_body(request)
    if not raw.strip():
        return {}
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidValue("the body must be a JSON object of Handle authorization fields")
    fields: dict[str, str] = {}
    for name in authorization.FIELDS:
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or len(value) > authorization.MAX_HEADER_CHARS:
            raise InvalidValue(f"{name!r} must be a string")
        fields[name] = value
    return fields


@router.get(
    "/api/sessions/this",
    summary="Show a session: its nonce, and who it is authenticated as",
    responses=_THIS,
)
async def show_session(
    request: Request, state: State, session_id: SessionIdParam = None
) -> Response:
    """``{"sessionId", "nonce", "authenticated", "id"?, "expiresIn"}`` for the session
    named by ``Authorization: Handle sessionId="..."`` (or a Bearer token, or
    ``?sessionId=``); 401 for an unknown, expired or ended one."""
    fields = {"sessionId": session_id} if session_id else {}
    token = _named_session(request, fields)
    found = await _known(state, token)
    return json_response(_representation(token, found, await _sessions(state).expires_in(token)))


@router.post("/api/sessions/this", include_in_schema=False)  # Handle takes POST as PUT
@router.put(
    "/api/sessions/this",
    summary="Authenticate a session: answer its nonce, or HTTP Basic",
    responses=_THIS,
    openapi_extra={"security": [{"basic": []}, {}]},
)
async def authenticate_session(
    request: Request, state: State, session_id: SessionIdParam = None
) -> Response:
    """Either ``Authorization: Handle sessionId="...", id="300%3A<handle>",
    type="HS_PUBKEY", alg="SM3"|"Ed25519", cnonce="<base64>", signature="<base64>"``
    (the fields may also come as JSON members), the signature being over the bytes of
    the session's nonce followed by those of cnonce; or ``Authorization: Basic`` with
    the session named by ``?sessionId=`` or a ``sessionId`` member. The nonce is used
    up by every answer: GET the session for the new one. ``type="HS_SECKEY"`` digests
    are refused (this node stores only scrypt hashes of secrets; use Basic). Without
    credentials, shows the session as GET does."""
    fields = await _body_fields(request)
    if session_id and "sessionId" not in fields:
        fields["sessionId"] = session_id
    header = (request.headers.get("authorization") or "").strip()
    token = _named_session(request, fields)
    await _known(state, token)
    registrar = state.registrar
    if header.lower().startswith("basic "):
        await registrar.bind_session(token, await state.authenticate(request))
    else:
        auth = (
            authorization.parse(header)
            if authorization.is_handle_scheme(header)
            else authorization.HandleAuthorization()
        ).with_defaults(fields)
        if auth.authenticating:
            await registrar.answer_nonce(token, auth)
    found = await _known(state, token)
    return json_response(_representation(token, found, await _sessions(state).expires_in(token)))


@router.delete(
    "/api/sessions/this",
    summary="End a session",
    status_code=204,
    responses={**_THIS, 204: {"description": "Ended; no body"}},
)
async def end_session(
    request: Request, state: State, session_id: SessionIdParam = None
) -> Response:
    """Ends the session named by ``Authorization: Handle sessionId="..."`` (or a Bearer
    token, or ``?sessionId=``): 204, as Handle; 401 for an unknown one."""
    fields = {"sessionId": session_id} if session_id else {}
    token = _named_session(request, fields)
    if not await _sessions(state).revoke(token):
        raise AuthenticationRequired("The session is unknown, expired or ended")
    return Response(status_code=204)


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
    """With a Bearer token (or ``Authorization: Handle sessionId``) and no parameter:
    ends that session. With ``identity``: ends
    every session of that identity; allowed to the identity itself and to the
    administrator of a prefix above it."""
    header = request.headers.get("authorization") or ""
    caller = await state.authenticate(request)
    sessions = _sessions(state)
    if identity is None:
        scheme, _, token = header.strip().partition(" ")
        if authorization.is_handle_scheme(header):
            token = authorization.parse(header).session_id or ""
        elif scheme.lower() != "bearer":
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
    responses={
        **_AUTH,
        403: {"description": "May not change that identity's secret (400)"},
        404: {"description": "No such identity here (100)"},
    },
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
