"""The one exception tree of the project.

Every error a node can answer with is an :class:`IdnodeError`. Each class carries the
Handle ``responseCode`` and the HTTP status it maps to, so HTTP handlers never decide
them case by case: they render ``error.body()`` with ``error.http_status``.

::

    IdnodeError                          (responseCode 2, HTTP 500)
    ├── ConfigError                        a setting is missing or invalid at start-up
    ├── RequestError                     the caller sent something wrong
    │   ├── MalformedRequest               4, 400  a body that is not JSON, or JSON of the
    │   │                                          wrong shape for the request (Handle's
    │   │                                          PROTOCOL_ERROR)
    │   ├── InvalidHandle                102, 400  malformed identifier
    │   ├── InvalidValue                 202, 400  malformed value, body or parameter
    │   │   ├── MalformedValue             4, 400  a PUT body or value of the wrong JSON
    │   │   │                                      shape (values not a list, index not
    │   │   │                                      an integer, data missing): Handle's
    │   │   │                                      PROTOCOL_ERROR, as for unparseable JSON
    │   │   ├── TemplateViolation        202, 400  values refused by their metadata template
    │   │   └── NotIndexed               202, 400  a search or query on a value type this
    │   │                                          node does not index (it never scans)
    │   ├── NotFound                     100, 404  no such application or entry
    │   │   └── HandleNotFound           100, 404
    │   ├── Conflict                     101, 409  clashes with the current state
    │   │   ├── HandleExists             101, 409
    │   │   ├── ValueExists              201, 409  index taken (add without overwrite)
    │   │   └── TemplateConflict         202, 409  a draft drops or changes a published item
    │   ├── ValuesNotFound               200, 400  no value at the given indexes
    │   ├── NotResponsible               301, 400  prefix not homed here (+ referral)
    │   ├── AuthenticationRequired       402, 401  credentials missing or wrong
    │   ├── NotAuthorised                400, 403  identity may not do this here
    │   │   └── ValueReadOnly            401, 403  a value's admin-write bit is 0: nobody
    │   │                                          may change it (Handle's
    │   │                                          INSUFFICIENT_PERMISSIONS)
    │   ├── PayloadTooLarge                2, 413  body over the configured limit
    │   └── TooManyRequests                2, 429  over the per-second rate limit
    │       ├── DailyLimitReached        603, 429  over the daily request quota
    │       └── TooManyApplications        2, 429  the node holds its cap of pending
    │                                              enterprise applications
    └── ServiceError                     the node could not do its part
        ├── StoreUnavailable               2, 503  Redis down or not answering
        │   ├── StoreLoading               2, 503  Redis is loading its data (start-up or
        │   │                                      restart); the node serves once loaded
        │   ├── StoreFull                  2, 507  Redis refuses writes (disk or memory
        │   │                                      full); reads go on
        │   └── WriteNotReplicated         2, 503  a write made on its master, but not
        │                                          confirmed by --replica-acks replicas
        ├── UpstreamUnavailable            2, 502  another node refused or failed
        └── UpstreamTimeout                2, 504  another node did not answer in time

``RequestError`` versus ``ServiceError`` follows h11's Local/RemoteProtocolError split:
the first means "change your request", the second "try again later".
"""

from __future__ import annotations

from typing import Any, ClassVar


class IdnodeError(Exception):
    """Base of every error a node reports.

    >>> err = HandleNotFound("Handle 88.100/x not found", handle="88.100/x")
    >>> err.http_status, err.response_code, err.body()["handle"]
    (404, 100, '88.100/x')
    """

    response_code: ClassVar[int] = 2
    http_status: ClassVar[int] = 500
    default_message: ClassVar[str] = "Internal error"

    def __init__(self, message: str | None = None, *, handle: str | None = None) -> None:
        self.message = message or self.default_message
        self.handle = handle
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        """The JSON error body: responseCode, the handle when one was named, a message."""
        body: dict[str, Any] = {"responseCode": self.response_code}
        if self.handle is not None:
            body["handle"] = self.handle
        body["message"] = self.message
        return body


class RequestError(IdnodeError):
    """The request was wrong; repeating it unchanged fails the same way."""

    http_status = 400
    default_message = "Bad request"


class MalformedRequest(RequestError):
    """The request itself cannot be read: its body is not JSON, or not the JSON the
    request takes. Handle's reference servlet answers these with PROTOCOL_ERROR (4)."""

    response_code = 4
    default_message = "Malformed request"


class InvalidHandle(RequestError):
    response_code = 102
    default_message = "Invalid handle"


class InvalidValue(RequestError):
    response_code = 202
    default_message = "Invalid value"


class NotIndexed(InvalidValue):
    """A reverse lookup or query names a value type the node keeps no index of; the
    message says how to index it (the node never answers by scanning records)."""

    default_message = "Value type not indexed"


class MalformedValue(InvalidValue):
    """JSON that parses but is not of the shape a handle's values take: the body is not
    a list of objects, or a value's ``index`` is not an integer, its ``type`` not a
    string, its ``data`` missing or neither a string nor ``{format, value}``. Handle's
    reference fails to read such an entity and answers PROTOCOL_ERROR (4), as for a
    body that is not JSON. An :class:`InvalidValue` still (what it is about is a value),
    so code that rewords value errors keeps it."""

    response_code = 4
    default_message = "Malformed value"


class TemplateViolation(InvalidValue):
    """An identifier's values break its metadata template; ``violations`` lists each
    refused field as ``{"field", "index", "message"}``, also in the body as ``errors``."""

    default_message = "The values do not satisfy their metadata template"

    def __init__(
        self,
        message: str | None = None,
        *,
        handle: str | None = None,
        violations: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message, handle=handle)
        self.violations = violations or []

    def body(self) -> dict[str, Any]:
        body = super().body()
        if self.violations:
            body["errors"] = self.violations
        return body


class NotFound(RequestError):
    response_code = 100
    http_status = 404
    default_message = "Not found"


class HandleNotFound(NotFound):
    default_message = "Handle not found"


class Conflict(RequestError):
    response_code = 101
    http_status = 409
    default_message = "Conflicts with the current state"


class HandleExists(Conflict):
    default_message = "Handle already exists"


class TemplateConflict(Conflict):
    response_code = 202
    default_message = "A new template version must keep the published items"


class ValuesNotFound(RequestError):
    response_code = 200
    default_message = "No values found at the given indexes"


class ValueExists(Conflict):
    response_code = 201
    default_message = "A value already exists at that index"


class NotResponsible(RequestError):
    """A prefix this node does not hold; ``referral`` names the node that knows more."""

    response_code = 301
    default_message = "That prefix doesn't live here"

    def __init__(
        self,
        message: str | None = None,
        *,
        handle: str | None = None,
        referral: str | None = None,
        referral_prefix: str | None = None,
    ) -> None:
        super().__init__(message, handle=handle)
        self.referral = referral
        self.referral_prefix = referral_prefix

    def body(self) -> dict[str, Any]:
        body = super().body()
        if self.referral:
            body["referral"] = {"url": self.referral}
            if self.referral_prefix:
                body["referral"]["prefix"] = self.referral_prefix
        return body


class AuthenticationRequired(RequestError):
    response_code = 402
    http_status = 401
    default_message = "Authentication needed"


class NotAuthorised(RequestError):
    response_code = 400
    http_status = 403
    default_message = "Not authorised"


class ValueReadOnly(NotAuthorised):
    """A write would change a value whose own permissions say admin write 0. Handle's
    server refuses that for every identity with INSUFFICIENT_PERMISSIONS (401), "Value
    is read-only"."""

    response_code = 401
    default_message = "Value is read-only"


class PayloadTooLarge(RequestError):
    http_status = 413
    default_message = "Request body too large"


class TooManyRequests(RequestError):
    """Over a request limit; ``retry_after`` says in how many seconds to try again."""

    http_status = 429
    default_message = "Too many requests"

    def __init__(self, message: str | None = None, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DailyLimitReached(TooManyRequests):
    response_code = 603
    default_message = "Daily request limit reached"


class TooManyApplications(TooManyRequests):
    default_message = "This node holds as many pending applications as it accepts"


class ServiceError(IdnodeError):
    """The node, its store or another node failed; the request itself may be fine."""

    http_status = 500


class StoreUnavailable(ServiceError):
    http_status = 503
    default_message = "The node's store (Redis) is unavailable"


class StoreLoading(StoreUnavailable):
    """The store is loading its data into memory (a restart: the AOF is read back), so
    nothing can be read or written yet; the node answers once it is loaded, by itself.
    A large store takes minutes (``/readyz`` shows the progress)."""

    default_message = "The node is starting: its store is loading"


class StoreFull(StoreUnavailable):
    """The store refuses writes because its disk (or memory) is full; reads still work,
    and writes resume by themselves once there is room."""

    http_status = 507
    default_message = "The node's store is full: writes are refused, reads go on"


class WriteNotReplicated(StoreUnavailable):
    """A write was applied on its Redis master, but fewer of the master's replicas than
    the node requires (``--replica-acks``) confirmed it in time: should that master fail
    now, the replica that takes over may not have it. The write is not undone (it is
    atomic and may be read back); sending it again writes the same."""

    default_message = "The write was made, but no replica confirmed it in time"


class UpstreamUnavailable(ServiceError):
    http_status = 502
    default_message = "Upstream node unavailable"


class UpstreamTimeout(ServiceError):
    http_status = 504
    default_message = "Upstream node timed out"


class ConfigError(IdnodeError):
    """The node was started with a missing or invalid setting (named in the message)."""

    default_message = "Invalid configuration"
