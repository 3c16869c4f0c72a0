"""The suite's two tiers (docs/testing.md): `make test`, the README's test command, and `make test-slow`
together run every test but the opt-in hostile run exactly once, and CI (.ci/run) runs both.

Each target's marker expression is read from the Makefile and evaluated with pytest's own parser for
every combination of the markers that choose a tier, so a tier edited alone cannot leave a gap (a test
neither runs) or an overlap (a test both run)."""

import pathlib
import re

from _pytest.mark.expression import Expression

REPO = pathlib.Path(__file__).resolve().parents[2]
# The marks a test outside the opt-in hostile run can carry that choose its tier.
KINDS = (set(), {"slow"})


def tier_expression(makefile: str, target: str) -> str:
    """The -m expression of `target`'s pytest command."""
    recipe = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe, f"the Makefile has no target {target}"
    (expression,) = re.findall(r"-m '([^']+)'", recipe.group(1))
    return expression


def runs(expression: str, marks: set[str]) -> bool:
    return Expression.compile(expression).evaluate(lambda name, **_: name in marks)


def uncovered(expressions: list[str]) -> list[tuple[set[str], int]]:
    """Each kind of test that does not run exactly once, with how often it runs."""
    times = [(marks, sum(runs(e, marks) for e in expressions)) for marks in KINDS]
    return [(marks, n) for marks, n in times if n != 1]


def test_make_test_and_make_test_slow_run_every_test_once():
    makefile = (REPO / "Makefile").read_text()
    expressions = [tier_expression(makefile, t) for t in ("test", "test-slow")]
    assert uncovered(expressions) == []
    assert not runs(expressions[0], {"slow"}) and runs(expressions[1], {"slow"})
    assert not any(runs(e, {"hostile_full"}) for e in expressions)


def test_a_gap_or_an_overlap_between_the_tiers_is_found():
    assert uncovered(["not slow", "not hostile_full"]) == [(set(), 2)]  # an unmarked test runs twice
    assert uncovered(["not slow and not hostile_full", "hostile_full"]) == [({"slow"}, 0)]  # a slow one never


def test_ci_runs_the_readme_test_command_and_the_slow_tier():
    readme = (REPO / "README.md").read_text()
    assert "```sh\nmake test\n```" in readme
    commands = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert "make test" in commands and "make test-slow" in commands
