"""registry.errors: every error carries its Handle responseCode and HTTP status."""

from __future__ import annotations

import pytest

from registry import errors
from registry.errors import (
    AuthenticationRequired,
    ConfigError,
    Conflict,
    DailyLimitReached,
    HandleExists,
    HandleNotFound,
    IdnodeError,
    InvalidHandle,
    InvalidValue,
    MalformedRequest,
    MalformedValue,
    NotAuthorised,
    NotFound,
    NotIndexed,
    NotResponsible,
    PayloadTooLarge,
    RequestError,
    ServiceError,
    StoreFull,
    StoreLoading,
    StoreUnavailable,
    TemplateConflict,
    TemplateViolation,
    TooManyApplications,
    TooManyRequests,
    UpstreamTimeout,
    UpstreamUnavailable,
    ValueExists,
    ValueReadOnly,
    ValuesNotFound,
    WriteNotReplicated,
)

# class, responseCode, HTTP status, parent (the tree in the module docstring)
TABLE: list[tuple[type[IdnodeError], int, int, type[IdnodeError] | None]] = [
    (IdnodeError, 2, 500, None),
    (ConfigError, 2, 500, IdnodeError),
    (RequestError, 2, 400, IdnodeError),
    (MalformedRequest, 4, 400, RequestError),
    (InvalidHandle, 102, 400, RequestError),
    (InvalidValue, 202, 400, RequestError),
    (MalformedValue, 4, 400, InvalidValue),
    (TemplateViolation, 202, 400, InvalidValue),
    (NotIndexed, 202, 400, InvalidValue),
    (NotFound, 100, 404, RequestError),
    (HandleNotFound, 100, 404, NotFound),
    (Conflict, 101, 409, RequestError),
    (HandleExists, 101, 409, Conflict),
    (ValuesNotFound, 200, 400, RequestError),
    (ValueExists, 201, 409, Conflict),
    (TemplateConflict, 202, 409, Conflict),
    (NotResponsible, 301, 400, RequestError),
    (AuthenticationRequired, 402, 401, RequestError),
    (NotAuthorised, 400, 403, RequestError),
    (ValueReadOnly, 401, 403, NotAuthorised),
    (PayloadTooLarge, 2, 413, RequestError),
    (TooManyRequests, 2, 429, RequestError),
    (DailyLimitReached, 603, 429, TooManyRequests),
    (TooManyApplications, 2, 429, TooManyRequests),
    (ServiceError, 2, 500, IdnodeError),
    (StoreUnavailable, 2, 503, ServiceError),
    (StoreFull, 2, 507, StoreUnavailable),
    (StoreLoading, 2, 503, StoreUnavailable),
    (WriteNotReplicated, 2, 503, StoreUnavailable),
    (UpstreamUnavailable, 2, 502, ServiceError),
    (UpstreamTimeout, 2, 504, ServiceError),
]


@pytest.mark.parametrize(("cls", "code", "status", "parent"), TABLE)
def test_documented_codes_and_tree(
    cls: type[IdnodeError], code: int, status: int, parent: type[IdnodeError] | None
) -> None:
    err = cls()
    assert err.response_code == code
    assert err.http_status == status
    assert cls.response_code == code
    assert cls.http_status == status
    if parent is not None:
        assert cls.__bases__ == (parent,)
    assert isinstance(err, Exception)


def test_table_covers_every_error_class() -> None:
    defined = {
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type) and issubclass(obj, IdnodeError)
    }
    assert defined == {row[0] for row in TABLE}


@pytest.mark.parametrize(("cls", "code", "status", "parent"), TABLE)
def test_default_message_is_used_when_none_given(
    cls: type[IdnodeError], code: int, status: int, parent: type[IdnodeError] | None
) -> None:
    err = cls()
    assert err.message == cls.default_message
    assert err.message
    assert str(err) == err.message
    assert err.body() == {"responseCode": code, "message": cls.default_message}


def test_body_without_handle_has_no_handle_key() -> None:
    err = InvalidValue("'index' must be an integer")
    body = err.body()
    assert "handle" not in body
    assert body == {"responseCode": 202, "message": "'index' must be an integer"}
    assert str(err) == "'index' must be an integer"


def test_body_with_handle_names_it_between_code_and_message() -> None:
    err = HandleNotFound("Handle 88.100/x not found", handle="88.100/x")
    body = err.body()
    assert body == {
        "responseCode": 100,
        "handle": "88.100/x",
        "message": "Handle 88.100/x not found",
    }
    assert list(body) == ["responseCode", "handle", "message"]
    assert err.handle == "88.100/x"


def test_empty_handle_string_is_still_named() -> None:
    # Only None means "no handle"; an empty string was given and is reported.
    assert InvalidHandle("bad", handle="").body()["handle"] == ""


def test_errors_are_caught_by_their_branch() -> None:
    with pytest.raises(RequestError):
        raise ValueExists(handle="88.100/x")
    with pytest.raises(ServiceError):
        raise UpstreamTimeout()
    assert not issubclass(StoreUnavailable, RequestError)
    assert not issubclass(InvalidHandle, ServiceError)
