"""An unmodified pyhandle RESTHandleClient against a real node process over loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pyhandle.handleclient import PyHandleClient
from pyhandle.handleexceptions import HandleAlreadyExistsException, HandleAuthenticationError

from tests.server.node_process import NodeProcess

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    process = NodeProcess(tmp_path_factory.mktemp("pyhandle") / "data").start()
    yield process
    process.stop()


def rest_client(node: NodeProcess, password: str = "s3cret"):
    return PyHandleClient("rest").instantiate_with_username_and_password(
        node.url, "300:0.NA/88.100", password, HTTPS_verify=False
    )


def test_pyhandle_register_read_modify_search_delete(node: NodeProcess) -> None:
    client = rest_client(node)
    handle = "88.100/PYHANDLE-1"

    assert (
        client.register_handle(handle, "https://factory.example/p/1", checksum="abc123") == handle
    )
    assert client.get_value_from_handle(handle, "URL") == "https://factory.example/p/1"
    with pytest.raises(HandleAlreadyExistsException):
        client.register_handle(handle, "https://elsewhere.example")

    client.modify_handle_value(handle, URL="https://factory.example/p/1-v2", BATCH="B-77")
    record = client.retrieve_handle_record(handle)
    assert record["URL"] == "https://factory.example/p/1-v2" and record["BATCH"] == "B-77"
    assert record["CHECKSUM"] == "abc123" and "HS_ADMIN" in record

    client.delete_handle_value(handle, "BATCH")
    assert client.get_value_from_handle(handle, "BATCH") is None

    assert client.search_handle(URL="https://factory.example/*") == [handle]
    assert client.search_handle(URL="*p/1-v2", prefix="88.100") == [handle]

    minted = client.generate_and_register_handle("88.100", "https://factory.example/p/2")
    assert minted.startswith("88.100/") and client.retrieve_handle_record(minted)

    assert client.delete_handle(handle) == handle
    assert client.retrieve_handle_record_json(handle) is None


def test_pyhandle_wrong_password_is_refused(node: NodeProcess) -> None:
    client = rest_client(node, password="wrong")
    with pytest.raises(HandleAuthenticationError):
        client.register_handle("88.100/never", "https://x.example")
    assert rest_client(node).retrieve_handle_record_json("88.100/never") is None
