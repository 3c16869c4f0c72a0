"""The wall runner's final audit (coordinator.tools.chaos.runner._audit) against a scripted coordinator
stub: an incomplete audit (UNAVAILABLE) is asked again and recorded as such; any other error, or the
last incomplete one, is the audit's entry; a completed audit ends the asking."""

import json

import grpc
import pytest

from coordinator.tools.chaos import history as history_mod
from coordinator.tools.chaos import runner
from node.api.v1 import pcpsim_pb2 as pb
from tests.rpc_error import RpcRefusal


class _Stub:
    def __init__(self, answers: list) -> None:
        self.answers = answers
        self.asked = 0

    def Audit(self, request, timeout):
        answer = self.answers[self.asked]
        self.asked += 1
        if isinstance(answer, Exception):
            raise answer
        return answer


UNPARKED = RpcRefusal(grpc.StatusCode.UNAVAILABLE, "the audit could not park cpu 3")


def _entries(path) -> list[tuple[str, str, dict]]:
    lines = [json.loads(line) for line in open(path, encoding="utf-8")]
    return [(e["type"], e["f"], {k: e[k] for k in ("ok", "error") if k in e}) for e in lines]


@pytest.fixture(autouse=True)
def no_wait(monkeypatch):
    monkeypatch.setattr(runner, "AUDIT_RETRY_S", 0.0)


def test_an_incomplete_audit_is_asked_again_and_the_completed_one_is_the_verdicts(tmp_path):
    h = history_mod.History(str(tmp_path / "h.jsonl"))
    stub = _Stub([UNPARKED, pb.AuditReply(ok=True, total_pages=64)])
    runner._audit(stub, h, lambda line: None)
    h.close()
    error = "UNAVAILABLE: the audit could not park cpu 3"
    assert _entries(tmp_path / "h.jsonl") == [
        ("observe", "audit-incomplete", {"error": error}),
        ("final", "audit", {"ok": True}),
    ]


def test_the_last_incomplete_audit_or_another_error_is_the_audits_entry(tmp_path):
    h = history_mod.History(str(tmp_path / "h.jsonl"))
    runner._audit(_Stub([UNPARKED] * runner.AUDIT_ATTEMPTS), h, lambda line: None)
    refused = RpcRefusal(grpc.StatusCode.FAILED_PRECONDITION, "the coordinator is fenced")
    stub = _Stub([refused, pb.AuditReply(ok=True)])
    runner._audit(stub, h, lambda line: None)
    h.close()
    entries = _entries(tmp_path / "h.jsonl")
    assert [f for _, f, _ in entries] == ["audit-incomplete"] * (runner.AUDIT_ATTEMPTS - 1) + ["audit", "audit"]
    assert entries[-2][2]["error"].startswith("UNAVAILABLE") and entries[-1][2]["error"].startswith(
        "FAILED_PRECONDITION"
    )
    assert stub.asked == 1
