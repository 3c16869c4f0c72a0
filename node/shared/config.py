"""Flags that may also come from the environment, for `python -m node` and `python -m coordinator`.

A container is configured by environment variables (Compose `environment:`, a Kubernetes
`env:` list shared by every pod of a StatefulSet), a process on a shell by flags. So every
address, port and tuning knob is both: `--zone-mb` is also PCPSIM_ZONE_MB. The rules:

- A flag on the command line wins over its variable; the variable wins over the default.
- A variable's value is parsed by the flag's own type and checked against its choices, so
  a bad value is refused like the same value given as the flag (exit status 2), with a
  message naming the variable.
- An empty variable counts as unset (Compose and Kubernetes make "" easy to set).
- On/off flags take 1/0, true/false, yes/no or on/off.

Addresses are HOST:PORT where HOST is a DNS name or an IP (IPv6 in brackets); nothing
here assumes loopback: a node registers the address it advertises (`--advertise`), which
is any name the coordinator can resolve, e.g. a StatefulSet pod's stable DNS name.
"""

import argparse
import os
import re

UNSET = type("Unset", (), {"__repr__": lambda self: "<unset>", "__bool__": lambda self: False})()

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
WILDCARD_HOSTS = {"0.0.0.0", "::", "[::]", ""}

# What source a value came from, strongest first.
FLAG, ENV, DEFAULT = "flag", "env", "default"


class EnvArgumentParser(argparse.ArgumentParser):
    """argparse with `add_argument(..., env="PCPSIM_X")`. After `parse_args`, `sources[dest]`
    says where each env-backed value came from: FLAG, ENV or DEFAULT."""

    def __init__(self, *args, environ=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.environ = os.environ if environ is None else environ
        self._env_actions = []  # (action, variable, default, required)
        self.sources: dict[str, str] = {}

    def add_argument(self, *args, env: str | None = None, **kwargs):
        if env is None:
            return super().add_argument(*args, **kwargs)
        if "%(" in (kwargs.get("help") or ""):
            # The help is escaped below (an env note may hold a %), so argparse would print the
            # specifier as written; the note gives the default.
            raise ValueError(f"{args}: an env-backed option's help takes no %-specifier; the note says the default")
        default = kwargs.pop("default", None)
        required = kwargs.pop("required", False)
        note = f"env {env}"
        if default not in (None, False):
            note += f"; default {default}"
        kwargs["help"] = ((kwargs.get("help") or "") + f" [{note}]").replace("%", "%%").strip()
        action = super().add_argument(*args, default=UNSET, **kwargs)
        self._env_actions.append((action, env, default, required))
        return action

    def parse_args(self, args=None, namespace=None):
        ns = super().parse_args(args, namespace)
        missing = []
        for action, var, default, required in self._env_actions:
            if getattr(ns, action.dest) is not UNSET:
                self.sources[action.dest] = FLAG
                continue
            text = self.environ.get(var, "")
            if text.strip():
                setattr(ns, action.dest, self._from_env(action, var, text.strip()))
                self.sources[action.dest] = ENV
            else:
                # As argparse does: a string default goes through the flag's type.
                if isinstance(default, str) and action.type is not None:
                    default = action.type(default)
                setattr(ns, action.dest, default)
                self.sources[action.dest] = DEFAULT
                if required:
                    missing.append(f"{flag_name(action)} (or {var})")
        if missing:
            self.error(f"the following arguments are required: {', '.join(missing)}")
        return ns

    def given(self, ns, dest: str, source: str) -> bool:
        """True if `dest` came from `source` with a value that means something (not off/empty)."""
        value = getattr(ns, dest)
        return self.sources.get(dest) == source and value is not None and value is not False

    def _from_env(self, action, var: str, text: str):
        where = f"argument {flag_name(action)} (from {var}={text!r})"
        if isinstance(action, argparse._StoreConstAction):  # store_true / store_false
            word = text.lower()
            if word not in _TRUE | _FALSE:
                self.error(f"{where}: expected 1/0, true/false, yes/no or on/off")
            return action.const if word in _TRUE else not action.const
        value = text
        if action.type is not None:
            try:
                value = action.type(text)
            except argparse.ArgumentTypeError as err:
                self.error(f"{where}: {err}")
            except (TypeError, ValueError):
                name = getattr(action.type, "__name__", repr(action.type))
                self.error(f"{where}: invalid {name} value: {text!r}")
        if action.choices is not None and value not in action.choices:
            choices = ", ".join(map(repr, action.choices))
            self.error(f"{where}: invalid choice: {value!r} (choose from {choices})")
        return value


def flag_name(action) -> str:
    return max(action.option_strings, key=len) if action.option_strings else action.dest


# ------------------------------------------------------------------ argparse types
def positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def int_range(lo: int, hi: int):
    """A flag type taking a whole number in lo..hi inclusive."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be in {lo}..{hi}, got {value}")
        return value

    return parse


def split_host_port(text: str) -> tuple[str, int]:
    """ "host:port", "[v6]:port" -> (host without brackets, port); ValueError if malformed."""
    host, sep, port = text.strip().rpartition(":")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not bare or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    if ":" in bare and not host.startswith("["):
        raise ValueError(f"an IPv6 host needs brackets ([{bare}]:{port}), got {text!r}")
    if not re.fullmatch(r"[A-Za-z0-9._:%-]+", bare):
        raise ValueError(f"bad host {bare!r} in {text!r}")
    return bare, int(port)


def host_port(text: str) -> str:
    """argparse type: a HOST:PORT address (DNS name or IP, port 0-65535), returned as given."""
    try:
        split_host_port(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text.strip()


def dialable(text: str) -> str:
    """argparse type: an address to connect to (port 1-65535)."""
    address = host_port(text)
    if split_host_port(address)[1] == 0:
        raise argparse.ArgumentTypeError(f"port 0 cannot be dialled: {text!r}")
    return address


def join_host_port(host: str, port: int) -> str:
    host = host.strip("[]")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def advertised(listen: str, bound_port: int, advertise: str | None) -> str:
    """The address a process tells others to reach it at: `advertise` if given (its port 0
    meaning the bound port), else the listen host with the port actually bound."""
    if advertise:
        host, port = split_host_port(advertise)
        return join_host_port(host, port or bound_port)
    return join_host_port(split_host_port(listen)[0], bound_port)


def advertised_metrics(bound: str, advertise: str | None) -> str:
    """The /metrics address to register: the bound one, but with the advertised host when
    the endpoint listens on every interface (0.0.0.0 is nobody's address to scrape)."""
    if not bound or not advertise:
        return bound
    host, port = split_host_port(bound)
    if host in WILDCARD_HOSTS:
        return join_host_port(split_host_port(advertise)[0], port)
    return bound


def cpu_from_hostname(hostname: str) -> int:
    """The CPU number in a hostname's trailing -N: a StatefulSet pod's ordinal
    ("pcpsim-node-3" -> 3). Only the first label counts, so an FQDN works too."""
    label = hostname.strip().split(".", 1)[0]
    match = re.fullmatch(r".*-([0-9]+)", label)
    if not match:
        raise ValueError(f"hostname {hostname!r} does not end in -N (a StatefulSet pod's ordinal); give --cpu instead")
    return int(match.group(1))
