"""node.epoch: a node keeps the highest coordinator epoch it has seen and acts on nothing older."""

import grpc
import pytest

from node.api.epoch import HEADER, epoch_metadata, request_epoch
from node.api.errors import FailedPrecondition, InvalidArgument
from node.api.v1 import pcpsim_pb2 as pb
from node.epoch import CoordinatorEpoch, StaleEpoch
from node.epoch_rule import EpochRule


def test_a_request_from_an_older_epoch_is_refused_naming_both():
    e = CoordinatorEpoch()
    e.check_request(epoch_metadata(3))
    e.check_request(epoch_metadata(3))
    with pytest.raises(FailedPrecondition, match="coordinator epoch 2, older than epoch 3"):
        e.check_request(epoch_metadata(2))
    assert e.stale_requests_refused == 1
    e.check_request(epoch_metadata(4))
    assert e.highest == 4


def test_a_request_without_an_epoch_is_not_checked_and_a_malformed_one_is_invalid():
    e = CoordinatorEpoch()
    e.check_request(epoch_metadata(5))
    e.check_request(())  # the operator's tools
    e.check_request(epoch_metadata(0))
    assert e.stale_requests_refused == 0
    with pytest.raises(InvalidArgument):
        request_epoch(((HEADER, "x"),))
    with pytest.raises(InvalidArgument):
        request_epoch(((HEADER, str(1 << 63)),))


def test_an_older_reply_is_not_acted_on():
    e = CoordinatorEpoch()
    e.admit("Register", pb.RegisterReply(coordinator_epoch=2))
    assert e.admit("Heartbeat", pb.HeartbeatReply(coordinator_epoch=2)).coordinator_epoch == 2
    with pytest.raises(StaleEpoch) as err:
        e.admit("Heartbeat", pb.HeartbeatReply(coordinator_epoch=1))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE  # as if unanswered: the lease is not renewed
    with pytest.raises(StaleEpoch):
        e.admit("Register", pb.RegisterReply(coordinator_epoch=1))
    assert (e.registered, e.stale_replies_ignored) == (2, 2)


def test_a_newer_epoch_than_registered_with_means_register_again():
    e = CoordinatorEpoch()
    e.admit("Register", pb.RegisterReply(coordinator_epoch=1))
    with pytest.raises(StaleEpoch) as err:
        e.admit("Heartbeat", pb.HeartbeatReply(coordinator_epoch=2))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND  # the agent resumes, as after a restart
    e.admit("Register", pb.RegisterReply(coordinator_epoch=2))
    e.admit("Heartbeat", pb.HeartbeatReply(coordinator_epoch=2))
    assert (e.highest, e.registered) == (2, 2)


def test_a_zone_reply_from_an_older_epoch_is_refused():
    e = CoordinatorEpoch()
    e.check_request(epoch_metadata(2))  # seen on a drain request: fencing needs no reply first
    with pytest.raises(StaleEpoch, match="zone reply from coordinator epoch 1"):
        e.admit_zone(pb.ZoneReply(coordinator_epoch=1))
    assert e.admit_zone(pb.ZoneReply(coordinator_epoch=2)).coordinator_epoch == 2
    assert e.admit_zone(pb.ZoneReply()).coordinator_epoch == 0  # no epoch: not checked


def test_a_zone_refusal_from_a_coordinator_not_registered_with_is_another_zones():
    rule = EpochRule()
    assert not rule.unregistered(3)  # not registered yet: no epoch known, nothing to tell
    rule.reply("Register", 2)
    assert (rule.unregistered(1), rule.unregistered(2), rule.unregistered(3)) == (False, False, True)
    assert not rule.unregistered(0)  # a coordinator without epochs (--unsafe-no-epoch)


def test_while_a_resume_registration_is_unanswered_the_coordinator_it_leaves_is_obeyed_no_more():
    # seed 419 of the sweep (second-coordinator): the first coordinator's commit reached a node between
    # its resume Register (the grant's pages among its holdings, claimed by the second) and that
    # Register's answer, the only message that told it of epoch 2; the pages left for the first's zone.
    e = CoordinatorEpoch()
    e.admit("Register", pb.RegisterReply(coordinator_epoch=1))
    e.check_request(epoch_metadata(1))
    e.resuming = True  # NOT_FOUND (no epoch in it): the agent reports its pages to whoever answers
    with pytest.raises(FailedPrecondition, match="coordinator epoch 1, which this CPU registered with"):
        e.check_request(epoch_metadata(1))
    e.check_request(epoch_metadata(0))  # no epoch: not checked
    e.admit("Register", pb.RegisterReply(coordinator_epoch=2))
    assert not e.resuming
    with pytest.raises(FailedPrecondition, match="older than epoch 2"):
        e.check_request(epoch_metadata(1))
    e.check_request(epoch_metadata(2))
    assert e.stale_requests_refused == 2
