"""The wall nemesis's pushes of run-time rules (coordinator.tools.chaos.nemesis.Nemesis._push), with the
RPC replaced by a function that records what it sends: the last rules a process is sent are the current
ones, whichever push of two at once answers last."""

from coordinator.tools.chaos.nemesis import PARTITION, Nemesis


def test_a_push_that_answers_after_a_heal_pushes_again_what_is_current():
    """Sweep seed 4401 under the wall engine: a restarted coordinator's restore thread sent it rules
    read before the heal of a fault, asked again across the next restart, and its call answered after
    the heal's own push: the healed rule stayed on the coordinator. Here the heal runs while the first
    push is on the wire (inside its send); the pushes must end with no rule on the target."""
    nemesis = Nemesis.__new__(Nemesis)  # no cluster: only the rule book and the pushes
    nemesis.rules, nemesis.factors, nemesis.changes, nemesis.deferred = {}, {}, {}, set()
    fault = object()
    answered: list[list] = []  # the rules each push sent, in the order the pushes answered

    def push_now(target):
        rules = [r for _, r in nemesis.rules.get(target, [])]  # read now, as the real push builds its request
        if rules and not answered:  # the first push is on the wire: the heal runs, its own push answers first
            nemesis._remove_rules(target, fault)
        answered.append(rules)
        return {"injected": {}}

    nemesis._push_now = push_now
    nemesis._add_rules(3, fault, list(PARTITION))
    assert answered[:2] == [[], list(PARTITION)]  # the heal's push answered first, the stale one last
    assert answered[2:] == [[]]  # and the stale one was followed by the current rules
