"""node.sim.net's nemesis: RPC rules, partitions, cuts, stopped and dead endpoints, at exact virtual instants."""

import pytest

from node.sim.clock import EventQueue
from node.sim.faults import PARTITION, Rule
from node.sim.net import Latency, SimNetwork
from node.sim.rng import RngTree

ONE_WAY = 1e-3  # a fixed latency, so every instant below is exact
C = "coordinator"


def _net(seed: int = 1) -> tuple[EventQueue, SimNetwork, RngTree]:
    q = EventQueue()
    tree = RngTree(seed)
    return q, SimNetwork(q, tree.stream("net"), Latency([(0.0, ONE_WAY), (100.0, ONE_WAY)])), tree


class Call:
    """One request from `src` to `dst` whose handler answers at once; what happened, and when."""

    def __init__(self, q: EventQueue, net: SimNetwork, src, dst, method: str = "Drain", value: str = "ok") -> None:
        self.q = q
        self.handled: list[float] = []
        self.replies: list[tuple[float, str]] = []
        self.errors: list[tuple[float, str, str]] = []

        def handle(respond) -> None:
            self.handled.append(q.clock())
            respond(value)

        net.request(
            src,
            dst,
            method,
            handle,
            lambda v: self.replies.append((q.clock(), v)),
            lambda code, detail: self.errors.append((q.clock(), code, detail)),
        )


def test_without_faults_a_request_is_handled_one_latency_later_and_answered_one_more_later():
    q, net, _ = _net()
    call = Call(q, net, C, 1)
    q.run(1.0)
    assert call.handled == [ONE_WAY] and call.replies == [(2 * ONE_WAY, "ok")] and not call.errors


def test_a_delay_adds_exactly_its_amount_on_either_side():
    q, net, tree = _net()
    net.set_rules(1, [Rule("in", delay_s=0.25)], tree.stream("f1"))
    net.set_rules(C, [Rule("out", "Drain", peer=2, delay_s=0.5)], tree.stream("fc"))
    to1, to2, other = Call(q, net, C, 1), Call(q, net, C, 2), Call(q, net, C, 2, method="GetPcp")
    q.run(5.0)
    assert to1.handled == [ONE_WAY + 0.25] and to1.replies == [(2 * ONE_WAY + 0.25, "ok")]
    assert to2.handled == [0.5 + ONE_WAY] and to2.replies == [(0.5 + 2 * ONE_WAY, "ok")]
    assert other.replies == [(2 * ONE_WAY, "ok")]  # the rule's method does not match
    assert net.faults(1).injected["delay"] == 1


def test_drop_of_a_request_is_never_handled_and_drop_of_a_reply_is_handled_but_never_answered():
    q, net, tree = _net()
    net.set_rules(1, [Rule("in", drop=1.0)], tree.stream("f1"))
    net.set_rules(2, [Rule("in", drop_reply=1.0)], tree.stream("f2"))
    request_lost, reply_lost = Call(q, net, C, 1), Call(q, net, C, 2)
    q.run(1.0)
    assert request_lost.handled == [] and not request_lost.replies and not request_lost.errors
    assert reply_lost.handled == [ONE_WAY] and not reply_lost.replies and not reply_lost.errors
    assert net.lost == 2


def test_an_out_drop_never_leaves_and_an_out_fail_is_unavailable_at_the_sender_after_its_delay():
    q, net, tree = _net()
    net.set_rules(C, [Rule("out", "Drain", drop=1.0), Rule("out", "*", delay_s=0.125, fail=1.0)], tree.stream("fc"))
    dropped, failed = Call(q, net, C, 1), Call(q, net, C, 1, method="GetPcp")
    q.run(1.0)
    assert dropped.handled == [] and not dropped.replies and not dropped.errors
    assert failed.handled == [] and failed.errors == [(0.125, "UNAVAILABLE", "injected fault: GetPcp failed")]


def test_an_in_fail_is_not_handled_and_its_unavailable_travels_back():
    q, net, tree = _net()
    net.set_rules(1, [Rule("in", "Queue*", fail=1.0)], tree.stream("f1"))
    call = Call(q, net, C, 1, method="QueueWork")
    q.run(1.0)
    assert call.handled == [] and call.errors == [(2 * ONE_WAY, "UNAVAILABLE", "injected fault: QueueWork failed")]


def test_a_partition_loses_what_the_node_is_sent_and_sends_and_nothing_comes_back_at_the_heal():
    """The wall rules: what arrives at the node during the partition is lost, what it sends is lost
    on leaving; a request that reached it before answers across the partition (its reply is not a
    request), and after the heal messages flow again."""
    q, net, tree = _net()
    stream = tree.stream("f1")
    before = Call(q, net, C, 1)  # arrives at 1 ms, answered before the partition at 1.5 ms
    q.at(0.0015, net.set_rules, 1, PARTITION, stream)
    during_in, during_out = [], []
    q.at(0.002, lambda: during_in.append(Call(q, net, C, 1)))
    q.at(0.002, lambda: during_out.append(Call(q, net, 1, C)))
    q.at(0.5, net.set_rules, 1, (), stream)
    after = []
    q.at(0.5, lambda: after.append(Call(q, net, C, 1)))
    q.run(1.0)
    assert before.replies == [(2 * ONE_WAY, "ok")]
    assert not during_in[0].handled and not during_in[0].replies
    assert not during_out[0].handled and not during_out[0].replies
    assert after[0].replies == [(0.5 + 2 * ONE_WAY, "ok")]


@pytest.mark.parametrize("hold", [True, False])
def test_a_cut_holds_messages_until_the_heal_or_loses_them(hold):
    q, net, _ = _net()
    cut = net.cut({1, 2}, {C}, hold=hold)
    call = Call(q, net, C, 1)
    inside = Call(q, net, 1, 2)  # both on one side: not cut
    q.at(0.25, net.heal, cut)
    q.run(1.0)
    assert inside.replies == [(2 * ONE_WAY, "ok")]
    if hold:  # held where it reached the cut (1 ms), sent on at the heal
        assert call.handled == [0.25 + ONE_WAY] and call.replies == [(0.25 + 2 * ONE_WAY, "ok")]
    else:
        assert call.handled == [] and not call.replies and net.lost == 1


def test_a_held_link_keeps_its_order():
    q, net, _ = _net()
    cut = net.cut({C}, {1}, hold=True)
    got = []
    for k in range(5):
        q.at(k * 1e-4, net.request, C, 1, "Free", lambda respond, k=k: got.append(k), print, print)
    q.at(0.1, net.heal, cut)
    q.run(1.0)
    assert got == [0, 1, 2, 3, 4]


def test_a_stopped_endpoint_reads_what_waited_at_resume_in_order():
    q, net, _ = _net()
    net.stop(1)
    calls = [Call(q, net, C, 1, value=f"r{k}") for k in range(3)]
    q.at(0.5, net.resume, 1)
    q.run(1.0)
    assert [c.handled for c in calls] == [[0.5]] * 3
    assert [c.replies for c in calls] == [[(0.5 + ONE_WAY, f"r{k}")] for k in range(3)]


def test_a_stopped_endpoint_sends_nothing_until_its_resume_and_then_in_the_order_it_sent():
    """A stopped process sends nothing: its requests (say, a retry its own timer sends) and a reply it
    makes (an answer whose handler finished after the stop) leave at its resume, after what waited for
    it is read; a cut's retransmit of what it sent before the stop is no sending of its own."""
    q, net, _ = _net()
    served: list = []
    # C asks 1 at 0; 1 answers 0.4 later, by when it is stopped (0.1 to 0.6).
    net.request(
        C, 1, "Drain", lambda respond: q.after(0.4, respond, "late"), lambda v: served.append((q.clock(), v)), print
    )
    q.at(0.1, net.stop, 1)
    sent = []
    q.at(0.2, lambda: sent.append(Call(q, net, 1, C, method="Heartbeat")))
    waited = []
    q.at(0.3, lambda: waited.append(Call(q, net, C, 1, method="Free")))
    q.at(0.6, net.resume, 1)
    q.run(1.0)
    assert waited[0].handled == [0.6]  # read at the resume
    assert sent[0].handled == [0.6 + ONE_WAY] and sent[0].replies == [(0.6 + 2 * ONE_WAY, "ok")]
    assert served == [(0.6 + ONE_WAY, "late")] and waited[0].replies == [(0.6 + ONE_WAY, "ok")]


def test_a_stopped_endpoints_unsent_messages_die_with_it():
    q, net, _ = _net()
    net.stop(1)
    sent = Call(q, net, 1, C)
    q.at(0.1, net.kill, 1)
    q.run(1.0)
    assert sent.handled == [] and not sent.replies and not sent.errors and net.lost == 1


def test_a_dead_endpoint_refuses_requests_loses_what_waited_and_sends_nothing_until_revived():
    q, net, _ = _net()
    net.stop(1)
    waited = Call(q, net, C, 1)
    q.at(0.1, net.kill, 1)
    refused, sent = [], []
    q.at(0.2, lambda: refused.append(Call(q, net, C, 1)))
    q.at(0.2, lambda: sent.append(Call(q, net, 1, C)))
    q.at(0.3, net.revive, 1)
    again = []
    q.at(0.3, lambda: again.append(Call(q, net, C, 1)))
    q.run(1.0)
    assert waited.handled == [] and not waited.replies and not waited.errors
    assert refused[0].errors == [(0.2 + 2 * ONE_WAY, "UNAVAILABLE", "1 is down")]
    assert not sent[0].handled
    assert again[0].replies == [(0.3 + 2 * ONE_WAY, "ok")]


def test_killing_a_server_resets_the_calls_it_was_serving_and_a_moved_call_follows_its_process():
    """A SIGKILLed server's host resets its connections: each call it was serving fails UNAVAILABLE at
    its caller one latency later (not at the caller's deadline), and its late answer goes nowhere. A
    call moved to another endpoint (move_serving) is reset when that one dies, not the first."""
    q, net = _net()[:2]
    answers = []
    errors: list[tuple[float, str, str]] = []

    def call(dst) -> None:
        net.request(C, dst, "Drain", answers.append, answers.append, lambda c, d: errors.append((q.clock(), c, d)))

    q.at(0.0, call, 1)  # served by 1, never answered before the kill
    q.at(0.0, call, 2)  # served by 2, moved to 3
    q.run(0.01)
    assert len(answers) == 2  # the handlers ran (each appended its respond)
    respond_1 = answers.pop(0)
    net.move_serving(2, 3)
    q.at(0.1, net.kill, 1)
    q.at(0.1, net.kill, 2)
    q.run(0.2)
    assert errors == [(0.1 + ONE_WAY, "UNAVAILABLE", "1: connection reset")]
    respond_1("late")
    q.at(0.3, net.kill, 3)
    q.run(0.5)
    assert errors[1:] == [(0.3 + ONE_WAY, "UNAVAILABLE", "2: connection reset")]
    assert answers == [answers[0]]  # nothing answered: the late reply of the killed server was dropped


def _trace(seed: int) -> list[tuple]:
    """Many requests under probabilistic faults, with drawn latencies: what happened to each, and when."""
    q = EventQueue()
    tree = RngTree(seed)
    net = SimNetwork(q, tree.stream("net"), Latency([(0.0, 1e-4), (50.0, 3e-4), (100.0, 2e-3)]))
    net.set_rules(1, [Rule("in", drop=0.2, drop_reply=0.2, fail=0.1, delay_s=1e-4)], tree.stream("f1"))
    net.set_rules(C, [Rule("out", drop=0.1)], tree.stream("fc"))
    calls = []
    for k in range(200):
        q.at(k * 1e-3, lambda k=k: calls.append((k, Call(q, net, C, 1 + k % 2))))
    q.run(1.0)
    return [(k, c.handled, c.replies, c.errors) for k, c in calls]


def test_one_seed_gives_one_trace_and_another_seed_another():
    assert _trace(5) == _trace(5)
    assert _trace(5) != _trace(6)


def test_bad_rules_and_a_cut_with_one_endpoint_on_both_sides_are_refused():
    _, net, _ = _net()
    with pytest.raises(ValueError, match="drop_reply applies to IN"):
        Rule("out", drop_reply=0.5)
    with pytest.raises(ValueError, match="probability"):
        Rule("in", drop=1.5)
    with pytest.raises(ValueError, match="direction"):
        Rule("sideways")
    with pytest.raises(ValueError, match="share endpoints"):
        net.cut({1, C}, {C})


def test_a_rules_delay_is_a_wait_in_its_process_so_a_stop_meanwhile_makes_it_end_at_the_resume():
    q, net, tree = _net()
    net.set_rules(1, [Rule("in", delay_s=0.25)], tree.stream("f1"))
    call = Call(q, net, C, 1)  # arrives at 1 ms, its delay would end at 251 ms
    q.at(0.1, net.stop, 1)
    q.at(0.4, net.resume, 1)
    q.run(1.0)
    assert call.handled == [0.4] and call.replies == [(0.4 + ONE_WAY, "ok")]
