"""A chaos run's history.jsonl as `chaos check` and `chaos timeline` read it (coordinator.tools.chaos.history):
a line of valid JSON in the wrong shape, or an empty history, is refused by both with exit 2 naming the
file and the line, never a traceback (for `check`, exit 1 would read as the verdict "invalid")."""

import json
import math

import pytest

from coordinator.tools import cli
from coordinator.tools.chaos import history
from tests import hostile
from tests.unit.test_timeline import HISTORY, entry

# HISTORY, with one entry of each kind the checker reads more of.
FULL = [
    *HISTORY[:1],
    entry(0.0, "meta", "clock", "runner", monotonic_t0=12.5),
    *HISTORY[1:],
    entry(1.1, "observe", "pcp-lock-free", "nemesis", cpu=1, after_s=0.2),
    entry(1.3, "ok", "alloc-contig", nr_pages=512),
    entry(2.0, "final", "settled", "final", ok=True, detail="4 CPUs live"),
    entry(
        2.1,
        "final",
        "audit",
        "final",
        ok=True,
        lost=0,
        duplicated=0,
        unexpected=0,
        lost_pfns=[],
        duplicated_pfns=[],
        errors=[],
        where={"cma": 512},
    ),
    entry(2.2, "final", "tasks", "final", cpus={"2": {"allocs_at_heal": 1, "allocs_after": 2, "role": "x"}}),
]
FULL[0]["scenario"]["faults"] = [{"kind": "rpc", "at_s": 0.5, "heal_after_s": 1.0, "cpu": None, "method": "*"}]


def _write(run_dir, entries, extra: str = "") -> None:
    (run_dir / "history.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries) + extra)


def _both(run_dir, capsys) -> list[tuple[int, str]]:
    """(exit code, stderr) of `chaos check` and `chaos timeline` on run_dir."""
    out = []
    for argv in (["chaos", "check", str(run_dir)], ["chaos", "timeline", str(run_dir)]):
        code = cli.main(argv)
        out.append((code, capsys.readouterr().err))
    return out


def test_the_full_history_is_read_checked_and_drawn(tmp_path, capsys):
    _write(tmp_path, FULL)
    assert history.read(str(tmp_path / "history.jsonl")) == FULL
    (check, _), (drawn, _) = _both(tmp_path, capsys)
    assert check in (0, 1, 2) and drawn == 0 and (tmp_path / "timeline.html").exists()


@pytest.mark.parametrize(
    "lines, line, said",
    [
        (["[1, 2]", *map(json.dumps, FULL)], 1, "the entry must be an object, got [1, 2]"),
        ([*map(json.dumps, FULL), "null"], len(FULL) + 1, "the entry must be an object, got None"),
        ([json.dumps(FULL[0]), '{"kind": 5, "type": [], "t": "x"}'], 2, "t must be a number of seconds"),
        ([json.dumps(FULL[0]), json.dumps(entry(0.1, "done", index=0))], 2, "a drain's type must be invoke"),
        ([json.dumps(FULL[0]), json.dumps(entry(0.1, "ok", index="0"))], 2, "index must be a whole number"),
        (
            [json.dumps(FULL[0]), json.dumps(entry(0.1, "fault", "rpc", "nemesis", phase="end"))],
            2,
            'phase must be "start" or "heal"',
        ),
        ([json.dumps({**FULL[0], "bound_s": math.inf})], 1, "bound_s must be a positive number"),
        ([json.dumps(FULL[1]), json.dumps(FULL[0])], None, "the first meta entry is 'clock'"),
        ([json.dumps(FULL[0]), json.dumps(entry(2, "final", "grants", cpus={"0": [{"token": 1}]}))], 2, "outcome"),
    ],
)
def test_a_history_line_of_the_wrong_shape_is_refused_by_check_and_timeline_naming_file_and_line(
    tmp_path, capsys, lines, line, said
):
    (tmp_path / "history.jsonl").write_text("\n".join(lines) + "\n")
    where = f"history.jsonl:{line}: " if line else "history.jsonl: "
    for code, err in _both(tmp_path, capsys):
        assert code == 2 and where in err and said in err, err
    assert not (tmp_path / "timeline.html").exists()


def test_an_empty_history_is_refused_the_same_way_by_check_and_timeline(tmp_path, capsys):
    (tmp_path / "history.jsonl").write_text("")
    results = _both(tmp_path, capsys)
    assert [code for code, _ in results] == [2, 2]
    assert results[0][1] == results[1][1] and "no entries" in results[0][1]
    assert not (tmp_path / "timeline.html").exists()


@pytest.mark.parametrize("value", [None, "x", -1, math.nan, 1e308, [], {}])
def test_each_field_of_each_entry_made_hostile_is_refused_or_read_by_both(tmp_path, capsys, value):
    """Every field of every entry of FULL set to `value`, or deleted: exit 2 naming the line, or a
    verdict / a page; never a traceback."""
    for i, e in enumerate(FULL):
        for where in hostile.paths(e):
            for change in (value, hostile.DELETE):
                _write(tmp_path, [*FULL[:i], hostile.mutated(e, where, change), *FULL[i + 1 :]])
                for code, err in _both(tmp_path, capsys):
                    assert code in (0, 1, 2), (i, where)
                    if code == 2 and "history.jsonl:" in err:
                        assert f"history.jsonl:{i + 1}: " in err or "first meta entry" in err, (i, where, err)
