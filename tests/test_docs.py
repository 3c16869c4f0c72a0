"""README.md and docs/ name nothing that does not exist: every path, link and anchor, make target,
`pcpsim` command and flag, `python -m` module and dotted code reference is checked against the tree
and the CLI's own parser; and every docs/ file the code cites exists."""

import argparse
import pathlib
import re
import subprocess

import pytest

from coordinator.tools.cli import build_parser

REPO = pathlib.Path(__file__).resolve().parents[1]
MARKDOWN = ["README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))]
# Named in the docs but not files of the repository: placeholders and files a run or a deployment writes.
NOT_FILES = {
    "RESULTS.json",
    "OTHER.json",
    "A.json",
    "B.json",
    "wall.json",
    "virtual.json",
    "seed1.json",
    "PATH-seedN.json",
    "verdict.json",
    "coordinator.token",
    "node.token",
    "node.key",
    "coordinator.key",  # this and the next: lines of a token file, not modules of the coordinator package
    "coordinator.sha256",
}
PATHY = re.compile(
    r"(?<![\w./-])((?:\.\./)?(?:\.ci|node|coordinator|deploy|tests|proto|docs)/[\w./*{}-]*"
    r"|[\w-]+\.(?:py|md|toml|yml|yaml|json))(?![\w])"
)
FENCE = re.compile(r"^ *```\w*\n(.*?)^ *```", re.S | re.M)


def subcommands(parser: argparse.ArgumentParser) -> dict:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


def parsers(parser: argparse.ArgumentParser):
    yield parser
    for sub in subcommands(parser).values():
        yield from parsers(sub)


def code_spans(text: str) -> list[str]:
    """Inline code and fenced blocks: where commands and paths are written (the pages use no
    indented code blocks; an indented line is a list item's continuation)."""
    return re.findall(r"`([^`]+)`", FENCE.sub("", text)) + FENCE.findall(text)


def slug(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def path_exists(doc: pathlib.Path, path: str) -> bool:
    path = path.rstrip(".")
    if path in NOT_FILES:
        return True
    candidate = (doc.parent / path) if path.startswith("../") else REPO / path
    if "*" in path:
        return any(REPO.glob(str(candidate.relative_to(REPO))))
    if "/" not in path:  # a bare file name: anywhere in the tree
        return any(p for p in REPO.glob(f"**/{path}") if ".venv" not in p.parts)
    return candidate.exists()


def dangling(doc: pathlib.Path) -> list[str]:
    text = doc.read_text()
    cli = build_parser()
    top = subcommands(cli)
    flags = {flag for p in parsers(cli) for flag in p._option_string_actions}
    make_targets = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.M))
    found = []
    for target in re.findall(r"\]\(([^)]+)\)", text):
        if target.startswith("http"):
            continue
        path, _, anchor = target.partition("#")
        linked = (doc.parent / path).resolve() if path else doc
        if not linked.exists():
            found.append(f"link {target}")
        elif anchor and anchor not in {slug(h) for h in re.findall(r"^#+ (.*)$", linked.read_text(), re.M)}:
            found.append(f"anchor {target}")
    for code in code_spans(text):
        found += [f"path {p}" for p in PATHY.findall(code) if not path_exists(doc, p)]
        found += [f"make {t}" for t in re.findall(r"\bmake ([\w-]+)", code) if t not in make_targets]
        for module in re.findall(r"python3? -m ([\w.]+)", code):
            stem = REPO / module.replace(".", "/")
            if module not in ("venv", "pytest", "pip") and not (
                stem.with_suffix(".py").exists() or (stem / "__main__.py").exists()
            ):
                found.append(f"module {module}")
        for line in code.splitlines():
            for m in re.finditer(r"(?<![\w./-])(?<!-n )pcpsim ([a-z][\w-]*)(?: ([a-z][\w-]*))?", line):
                command, sub = m.groups()
                if command not in top or (subcommands(top[command]) and sub not in subcommands(top[command])):
                    found.append(f"command {m.group(0)}")
            for m in re.finditer(r"(?<![\w./-])(?<!-n )pcpsim [^|}`\n]*", line):
                found += [f"flag {f}" for f in re.findall(r"(?<![\w-])(--[\w-]+)", m.group(0)) if f not in flags]
    for ref in re.findall(r"`((?:node|coordinator)\.[\w.]+)", text):
        if ref not in NOT_FILES and not dotted_exists(ref):
            found.append(f"reference {ref}")
    return found


def dotted_exists(ref: str) -> bool:
    """`a.b.c` names a module or package, or a def, class or top-level name in one."""
    parts = ref.split(".")
    for i in range(len(parts), 0, -1):
        stem = REPO.joinpath(*parts[:i])
        source = stem.with_suffix(".py") if stem.with_suffix(".py").exists() else stem / "__init__.py"
        if source.exists():
            rest = parts[i:]
            return not rest or bool(
                re.search(rf"\b(def|class)\s+{rest[0]}\b|^{rest[0]}\s*[:=]", source.read_text(), re.M)
            )
    return False


@pytest.mark.parametrize("doc", MARKDOWN)
def test_the_docs_name_nothing_that_does_not_exist(doc):
    """Every path, link, make target, command, flag, module and code reference in the page exists."""
    assert dangling(REPO / doc) == []


def test_every_docs_file_the_code_cites_exists():
    """A `docs/NAME.md` cited in code, config or tests is a file of the tree."""
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    cited = set()
    for name in tracked:
        path = REPO / name
        if path == pathlib.Path(__file__):  # this file names missing pages on purpose
            continue
        if path.suffix in (".py", ".yml", ".yaml", ".toml") or path.name in ("Makefile", "Dockerfile"):
            cited |= set(re.findall(r"\bdocs/[\w-]+\.md", path.read_text()))
    assert cited and sorted(c for c in cited if not (REPO / c).exists()) == []


def test_a_dangling_reference_is_reported(tmp_path):
    """The check fails on a page that names a missing file, target, command, flag and module."""
    (tmp_path / "design.md").write_text((REPO / "docs" / "design.md").read_text())
    page = tmp_path / "planted.md"
    page.write_text(
        "`docs/nothing.md` `make nothing` `pcpsim nothing` `pcpsim drain --nothing` "
        "`python -m node.nothing` `node.mm.pcp.nothing` [x](missing.md) [y](design.md#nothing)\n"
    )
    found = dangling(page)
    assert found == [
        "link missing.md",
        "anchor design.md#nothing",
        "path docs/nothing.md",
        "make nothing",
        "command pcpsim nothing",
        "flag --nothing",
        "module node.nothing",
        "reference node.mm.pcp.nothing",
    ], found
