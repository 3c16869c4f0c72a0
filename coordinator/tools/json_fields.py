"""Whether a JSON value is what a type annotation says, for the readers of files a run wrote (a chaos
history's scenario, coordinator.tools.chaos.entry_shape; a sweep shard, chaos.sweep.shards; a compare
results file, results_file): one reading of int (JSON's true is no count), float (any finite number),
str, X | None, list[X], dict[K, V]."""

import math
import types
import typing


def fits(v, tp) -> bool:
    """`v` is a value of annotation `tp`."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is types.UnionType:
        return any(fits(v, a) for a in args)
    if origin is list:
        return isinstance(v, list) and all(fits(x, args[0]) for x in v)
    if origin is dict:
        return isinstance(v, dict) and all(fits(k, args[0]) and fits(x, args[1]) for k, x in v.items())
    if tp is type(None):
        return v is None
    if tp is float:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if tp is int:
        return isinstance(v, int) and not isinstance(v, bool)
    return isinstance(v, tp)


def typename(tp) -> str:
    """An annotation as an error names it: "int or None", "list[str]"."""
    if isinstance(tp, types.UnionType):
        return " or ".join(typename(a) for a in typing.get_args(tp))
    return tp.__name__ if isinstance(tp, type) and not typing.get_args(tp) else str(tp)
