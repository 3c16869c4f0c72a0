"""node.rtapp: rt-app task sets onto pcpsim's latency tasks. Every refusal names the key at fault."""

import copy
import json
import pathlib

import pytest

from node import rtapp
from node.runtime import TaskConfig

REPO = pathlib.Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "deploy" / "rt-app").glob("*.json"))


def task(**extra) -> dict:
    return {"tasks": {"t": {"cpus": [2], "run": 1000, "timer": {"ref": "unique", "period": 5000}, **extra}}}


def test_default_set_is_todays_two_tasks():
    """Without --workload a node runs exactly what was in code before: 20 ms / 4 ms / 10 ms with 2
    allocations preemptible, 250 ms / 150 ms / 200 ms with 2 allocations RT, on cpu2 and cpu3."""
    pre, rt = TaskConfig.for_role("isolated-preemptible"), TaskConfig.for_role("isolated-rt")
    assert (pre.period_s, pre.busy_s, pre.deadline_s, pre.allocs) == (0.020, 0.004, 0.010, 2)
    assert (rt.period_s, rt.busy_s, rt.deadline_s, rt.allocs) == (0.250, 0.150, 0.200, 2)
    assert rtapp.default().roles(4) == ["housekeeping", "housekeeping", "isolated-preemptible", "isolated-rt"]
    assert (REPO / "deploy/rt-app/default.json").resolve() == rtapp.DEFAULT_PATH.resolve()


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_sets_parse(path):
    assert rtapp.load(path).tasks


def test_mapping_of_a_phase():
    """Events after the timer come first (the loop starts at its wake-up); runs and sleeps keep
    their order; the period is the timer's; loops multiply; deadline defaults to the period."""
    doc = {
        "global": {"default_policy": "SCHED_FIFO", "logdir": "./"},
        "tasks": {
            "a": {
                "cpus": [1, 4],
                "instance": 2,
                "loop": 3,
                "phases": {
                    "p": {
                        "loop": 5,
                        "sleep0": 100,
                        "timer": {"ref": "unique", "period": 10000, "mode": "absolute"},
                        "run0": 2000,
                        "sleep1": 500,
                        "run1": 1000,
                    }
                },
                "pcpsim": {"allocs": 3},
            }
        },
    }
    (t,) = rtapp.parse(doc).tasks
    assert t.rt and t.priority == 10 and t.cpus == (1, 4) and t.loops == 15
    assert t.period_s == t.deadline_s == 0.010 and t.allocs == 3
    assert t.segments == (("run", 0.002), ("sleep", 0.0005), ("run", 0.001), ("sleep", 0.0001))
    assert t.busy_s == pytest.approx(0.003)
    assert rtapp.parse(doc).roles(5) == ["housekeeping", "isolated-rt", "housekeeping", "housekeeping", "isolated-rt"]


def mutate(fn) -> dict:
    doc = copy.deepcopy(task())
    fn(doc, doc["tasks"]["t"])
    return doc


CASES = {
    # unknown keys
    "top": (lambda d, t: d.update(extra=1), "extra: unknown key"),
    "global": (lambda d, t: d.update({"global": {"colour": 1}}), "global.colour: unknown key"),
    "task": (lambda d, t: t.update(colour=1), "tasks.t.colour: unknown key"),
    "timer": (lambda d, t: t["timer"].update(colour=1), "tasks.t.timer.colour: unknown key"),
    "ext": (lambda d, t: t.update(pcpsim={"pages": 1}), "tasks.t.pcpsim.pages: unknown key"),
    "stray": (
        lambda d, t: t.update(phases={"p": {"run": 1, "timer": {"ref": "x", "period": 9}}}),
        "tasks.t.run: unknown key",
    ),
    # bad values
    "no tasks": (lambda d, t: d.pop("tasks"), "tasks: required"),
    "empty": (lambda d, t: d.update(tasks={}), "tasks: no task"),
    "tasks type": (lambda d, t: d.update(tasks=[]), "tasks: must be a JSON object"),
    "policy": (lambda d, t: t.update(policy="FIFO"), "tasks.t.policy: must be SCHED_FIFO or SCHED_OTHER"),
    "default_policy": (lambda d, t: d.update({"global": {"default_policy": 1}}), "global.default_policy: must be"),
    "fifo prio": (lambda d, t: t.update(policy="SCHED_FIFO", priority=0), "tasks.t.priority: must be in 1..99"),
    "nice": (lambda d, t: t.update(priority=20), "tasks.t.priority: must be in -20..19"),
    "no cpus": (lambda d, t: t.pop("cpus"), "tasks.t.cpus: required"),
    "cpus type": (lambda d, t: t.update(cpus="2"), "tasks.t.cpus: must be a non-empty list"),
    "cpu": (lambda d, t: t.update(cpus=[-1]), "tasks.t.cpus[0]: must be in 0..1023, got -1"),
    "cpu past any cluster": (lambda d, t: t.update(cpus=[1024]), "tasks.t.cpus[0]: must be in 0..1023, got 1024"),
    "cpu twice": (lambda d, t: t.update(cpus=[2, 2], instance=2), "tasks.t.cpus: a CPU is named twice"),
    "migrating": (lambda d, t: t.update(cpus=[2, 3]), "tasks.t.cpus: one thread allowed on 2 CPUs"),
    "instance": (lambda d, t: t.update(instance=3), "tasks.t.instance: pcpsim runs one copy"),
    "loop": (lambda d, t: t.update(loop=0), "tasks.t.loop: must be -1"),
    "loop type": (lambda d, t: t.update(loop=1.5), "tasks.t.loop: must be a whole number"),
    "run": (lambda d, t: t.update(run=-1), "tasks.t.run: must be >= 0"),
    "sleep": (lambda d, t: t.update(sleep1="5"), "tasks.t.sleep1: must be a whole number"),
    "bool": (lambda d, t: t.update(run=True), "tasks.t.run: must be a whole number"),
    "no timer": (lambda d, t: t.pop("timer"), 'tasks.t: no "timer" event'),
    "period": (lambda d, t: t["timer"].update(period=0), "tasks.t.timer.period: must be >= 1"),
    "no period": (lambda d, t: t["timer"].pop("period"), "tasks.t.timer.period: required"),
    "ref": (lambda d, t: t["timer"].update(ref=""), "tasks.t.timer.ref: required"),
    "mode": (lambda d, t: t["timer"].update(mode="late"), "tasks.t.timer.mode: must be relative or absolute"),
    "timer type": (lambda d, t: t.update(timer=5), "tasks.t.timer: must be a JSON object"),
    "allocs": (lambda d, t: t.update(pcpsim={"allocs": -2}), "tasks.t.pcpsim.allocs: must be >= 0"),
    "deadline": (lambda d, t: t.update(pcpsim={"deadline": 0}), "tasks.t.pcpsim.deadline: must be >= 1"),
    "phase loop": (
        lambda d, t: t.update(phases={"p": {"loop": 0}}) or [t.pop(k) for k in ("run", "timer")],
        "tasks.t.phases.p.loop: must be >= 1",
    ),
    "one per cpu": (
        lambda d, t: d["tasks"].update(u=copy.deepcopy(t)),
        "tasks.u.cpus: cpu 2 already runs task 't'",
    ),
    # rt-app features outside the subset
    "rr": (lambda d, t: t.update(policy="SCHED_RR"), "tasks.t.policy: rt-app feature outside the subset"),
    "deadline class": (lambda d, t: t.update(**{"dl-runtime": 5}), "tasks.t.dl-runtime: rt-app feature outside"),
    "duration": (lambda d, t: d.update({"global": {"duration": 5}}), "global.duration: rt-app feature outside"),
    "resources": (lambda d, t: d.update(resources={}), "resources: rt-app feature outside"),
    "lock": (lambda d, t: t.update(lock="m"), "tasks.t.lock: rt-app feature outside"),
    "runtime": (lambda d, t: t.update(runtime0=5), "tasks.t.runtime0: rt-app feature outside"),
    "two timers": (
        lambda d, t: t.update(timer1={"ref": "unique", "period": 5}),
        "tasks.t.timer1: rt-app feature outside the subset pcpsim maps: one timer per task",
    ),
    "phases": (
        lambda d, t: t.update(phases={"a": {}, "b": {}}) or [t.pop(k) for k in ("run", "timer")],
        "tasks.t.phases: rt-app feature outside the subset pcpsim maps: pcpsim runs one periodic pattern",
    ),
    "phase policy": (
        lambda d, t: t.update(phases={"p": {"policy": "SCHED_FIFO"}}) or [t.pop(k) for k in ("run", "timer")],
        "tasks.t.phases.p.policy: rt-app feature outside",
    ),
    "shared timer": (
        lambda d, t: [t["timer"].update(ref="tick"), d["tasks"].update(u={**copy.deepcopy(t), "cpus": [3]})],
        "tasks.u.timer.ref: rt-app feature outside the subset pcpsim maps: timer 'tick' is shared with task 't'",
    ),
    "instances share": (
        lambda d, t: [t["timer"].update(ref="tick"), t.update(cpus=[2, 3], instance=2)],
        "tasks.t.timer.ref: rt-app feature outside the subset pcpsim maps: 2 instances would share",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_refusals_name_the_key(case):
    fn, message = CASES[case]
    with pytest.raises(rtapp.WorkloadError) as err:
        rtapp.parse(mutate(fn))
    assert str(err.value).startswith(message), str(err.value)


def test_roles_need_a_housekeeping_cpu_and_cpus_in_range():
    w = rtapp.parse(task())
    with pytest.raises(rtapp.WorkloadError, match=r"tasks: CPUs \[2\] are beyond the cluster's 2 CPUs"):
        w.roles(2)
    w = rtapp.parse({"tasks": {"t": {**task()["tasks"]["t"], "cpus": [0]}}})
    with pytest.raises(rtapp.WorkloadError, match="leave one for housekeeping"):
        w.roles(1)


def test_load_names_the_file_and_refuses_duplicate_keys(tmp_path):
    path = tmp_path / "set.json"
    path.write_text('{"tasks": {"t": {"cpus": [2], "run": 1, "run": 2, "timer": {"ref": "x", "period": 9}}}}')
    with pytest.raises(rtapp.WorkloadError, match=rf"^{path}: run: key given twice"):
        rtapp.load(path)
    path.write_text("{")
    with pytest.raises(rtapp.WorkloadError, match=rf"^{path}: not JSON"):
        rtapp.load(path)
    with pytest.raises(rtapp.WorkloadError, match="cannot read"):
        rtapp.load(tmp_path / "missing.json")
    path.write_text(json.dumps(mutate(lambda d, t: t.update(policy="x"))))
    with pytest.raises(rtapp.WorkloadError, match=rf"^{path}: tasks.t.policy: must be"):
        rtapp.load(path)
