"""Where a command will write, checked before it runs: a directory flag (--out, --run-dir) or a file
flag (--json, --event-log, --state) this process cannot write is refused with the flag named, before
anything runs or is created, not as a traceback after a run of minutes."""

import os

from coordinator.tools.cli.errors import CliError


def _refuse_unless_makable(flag: str, given: str, directory: str) -> None:
    """`directory` exists as one this process can write into, or its nearest existing ancestor does."""
    existing = os.path.abspath(directory)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not (os.path.isdir(existing) and os.access(existing, os.W_OK | os.X_OK)):
        raise CliError(f"{flag} {given}: {existing} is not a directory this process can write to")


def _refuse_empty(flag: str, path: str) -> None:
    """An empty path is no place: open("") fails only once the run is over, and os.path.join("", x)
    quietly writes into the working directory."""
    if not path.strip():
        raise CliError(f"{flag}: an empty path")


def output_dir(flag: str, path: str | None) -> None:
    """`path` is a directory this process can write into, or one it can make."""
    if path is not None:
        _refuse_empty(flag, path)
        _refuse_unless_makable(flag, path, path)


def output_file(flag: str, path: str | None, make_dirs: bool = False) -> None:
    """`path` is a file this process can write: not a directory, writable if it exists, in a directory
    it can write to (with `make_dirs`, or one the command makes)."""
    if path is None:
        return
    _refuse_empty(flag, path)
    if os.path.isdir(path):
        raise CliError(f"{flag} {path}: is a directory")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise CliError(f"{flag} {path}: this process cannot write it")
    directory = os.path.dirname(os.path.abspath(path))
    if not make_dirs and not os.path.isdir(directory):
        raise CliError(f"{flag} {path}: {directory} is not a directory this process can write to")
    _refuse_unless_makable(flag, path, directory)


def distinct_files(*flags: tuple[str, str | None]) -> None:
    """Two file flags naming one file: the second write would replace the first's output."""
    seen: dict[str, str] = {}
    for flag, path in flags:
        if path is None:
            continue
        key = os.path.realpath(path)
        if key in seen:
            raise CliError(f"{seen[key]} and {flag} name one file, {path}: give each its own")
        seen[key] = flag
