"""The readers of a scenario file's fields (coordinator.tools.chaos.scenario): each takes a field of a
TOML table and returns it checked, or raises ScenarioError naming the field, what it must be and what it
got. A bad file is refused whole before anything runs."""

from node.shared.cpulist import parse_cpu_list


class ScenarioError(ValueError):
    """A scenario file that cannot run; the message names the file (scenario.load) and the field."""


def known(doc: dict, where: str, allowed: set) -> None:
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise ScenarioError(f"{where}{unknown[0]}: unknown field (allowed: {', '.join(sorted(allowed))})")


def table(doc: dict, key: str) -> dict:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise ScenarioError(f"{key}: a table ([{key}]), got {value!r}")
    return value


def missing(doc, key, required, where):
    if key not in doc and required:
        raise ScenarioError(f"{where}{key}: required")
    return key not in doc


def integer(doc, key, lo, hi, default=None, required=False, where=""):
    if missing(doc, key, required, where):
        return default
    v = doc[key]
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ScenarioError(f"{where}{key}: an integer in [{lo}, {hi}], got {v!r}")
    return v


def number(doc, key, lo, hi, default=None, required=False, where=""):
    if missing(doc, key, required, where):
        return default
    v = doc[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
        raise ScenarioError(f"{where}{key}: a number in [{lo:g}, {hi:g}], got {v!r}")
    return float(v)


def text(doc, key, default=None, required=False, where=""):
    if missing(doc, key, required, where):
        return default
    v = doc[key]
    if not isinstance(v, str) or not v or len(v) > 200:
        raise ScenarioError(f"{where}{key}: a non-empty string of at most 200 characters, got {v!r}")
    return v


def file_name(name: str) -> str:
    """The scenario's name, which names its run directories (<name>-<strategy>, under --out): one
    plain path component, so that no run is written outside --out, nor fails once others have run."""
    if (
        name.startswith(".")
        or any(c in "/\\" for c in name)
        or not name.isprintable()  # NUL and every other control character
    ):
        raise ScenarioError(
            "name: a plain file name (it names the run directories): no '/', '\\', control character or "
            f"leading '.', got {name!r}"
        )
    return name


def choice(doc, key, choices, default, where):
    v = doc.get(key, default)
    if v not in choices:
        raise ScenarioError(f"{where}{key}: one of {list(choices)}, got {v!r}")
    return v


def cpus(doc, key, nr: int) -> list[int]:
    v = doc.get(key, "")
    if not isinstance(v, str):
        raise ScenarioError(f'cluster.{key}: a CPU list string like "2-3", got {v!r}')
    try:
        cpus = parse_cpu_list(v) if v else []
    except ValueError as err:
        raise ScenarioError(f"cluster.{key}: {err}") from None
    if any(c >= nr for c in cpus):
        raise ScenarioError(f"cluster.{key}: CPU {max(cpus)} is not below cluster.cpus ({nr})")
    return cpus
