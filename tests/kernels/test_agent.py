"""The agent's protocol, served over pipes on the host (the same code the guest runs)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from apicmap import MsiInjection, NotExpressible, Vcpu, VmState, make_engine
from apicmap.kernels.agent import Agent, serve
from apicmap.kernels.protocol import LineBuffer, encode_line
from apicmap.kernels.wire import decode_error, decode_outcome, encode_injection, encode_vm

ALIASED = VmState((Vcpu(0), Vcpu(1), Vcpu(2, xapic_id=1)))
TO_ID_1 = MsiInjection(0xFEE01000, 0, 0x40)


class Client:
    def __init__(self, engine_name: str) -> None:
        to_agent_r, self._to_agent = os.pipe()
        self._from_agent, from_agent_w = os.pipe()
        agent = Agent(lambda: make_engine(engine_name, "6.12") if engine_name == "model" else make_engine(engine_name))
        self.thread = threading.Thread(target=self._serve, args=(to_agent_r, from_agent_w, agent), daemon=True)
        self.thread.start()
        self._lines = LineBuffer()
        self._pending: list[bytes] = []
        self._id = 0
        assert json.loads(self._next_line())["ready"] is True  # the agent speaks first

    def _next_line(self) -> bytes:
        while not self._pending:
            self._pending.extend(self._lines.feed(os.read(self._from_agent, 1 << 16)))
        return self._pending.pop(0)

    @staticmethod
    def _serve(read_fd: int, write_fd: int, agent: Agent) -> None:
        try:
            serve(read_fd, write_fd, agent)
        finally:
            os.close(read_fd)
            os.close(write_fd)

    def raw(self, data: bytes) -> dict[str, Any]:
        os.write(self._to_agent, data)
        reply: dict[str, Any] = json.loads(self._next_line())
        return reply

    def call(self, op: str, **fields: Any) -> dict[str, Any]:
        self._id += 1
        reply = self.raw(encode_line({"id": self._id, "op": op, **fields}))
        assert reply["id"] == self._id
        return reply

    def close(self) -> None:
        os.close(self._to_agent)
        self.thread.join(5)
        os.close(self._from_agent)


@pytest.fixture
def model_client() -> Iterator[Client]:
    client = Client("model")
    yield client
    client.close()


def test_prepare_deliver_close_shutdown(model_client: Client) -> None:
    handle = model_client.call("prepare", vm=encode_vm(ALIASED))["result"]["handle"]
    reply = model_client.call("deliver", handle=handle, injections=[encode_injection(TO_ID_1)] * 3, explain=True)
    outcomes = [decode_outcome(o) for o in reply["result"]["outcomes"]]
    local = make_engine("model", "6.12").prepare(ALIASED).deliver(TO_ID_1, explain=True)
    assert outcomes == [local] * 3 and outcomes[0].explanation == local.explanation
    assert model_client.call("close", handle=handle)["ok"]
    gone = model_client.call("deliver", handle=handle, injections=[encode_injection(TO_ID_1)])
    assert not gone["ok"] and isinstance(decode_error(gone["error"]), KeyError)
    assert model_client.call("shutdown")["ok"]
    model_client.thread.join(5)
    assert not model_client.thread.is_alive()


def test_bad_requests_get_typed_errors(model_client: Client) -> None:
    assert model_client.raw(b"{not json\n")["error"]["type"] == "JSONDecodeError"
    unknown = model_client.call("reboot")
    assert not unknown["ok"] and "unknown op" in unknown["error"]["message"]
    bad_vm = model_client.call("prepare", vm={"vcpus": [{"vcpu_id": 0}]})
    assert bad_vm["error"]["type"] == "GuestChannelError"


def test_hello_reports_this_kernel() -> None:
    client = Client("model")
    try:
        hello = client.call("hello")["result"]
    finally:
        client.close()
    assert hello["release"] == os.uname().release
    assert isinstance(hello["kvm_available"], bool) and isinstance(hello["host_report"], dict)


@pytest.mark.kvm
def test_kvm_engine_errors_keep_their_type() -> None:
    client = Client("kvm")
    try:
        handle = client.call("prepare", vm=encode_vm(ALIASED))["result"]["handle"]
        from apicmap import IcrInjection

        nmi_from_xapic_source = IcrInjection(0, 0x400)  # would act on the source while its guest code runs
        reply = client.call("deliver", handle=handle, injections=[encode_injection(nmi_from_xapic_source)])
        assert type(decode_error(reply["error"])) is NotExpressible
        ok = client.call("deliver", handle=handle, injections=[encode_injection(TO_ID_1)])
        assert decode_outcome(ok["result"]["outcomes"][0]).same_as(make_engine("kvm").prepare(ALIASED).deliver(TO_ID_1))
    finally:
        client.close()
