"""Hostile copies of a good document, for the tests that prove a reader refuses every bad field by
name: each key and first list item as a path, and the document with one of them replaced or deleted."""

import copy
from collections.abc import Iterator

DELETE = object()  # a `value` that deletes the field instead


def paths(doc, prefix: tuple = (), skip: tuple = ()) -> Iterator[tuple]:
    """Every key (but those in `skip`) and first list item of `doc`, as a path of keys and indexes."""
    items = doc.items() if isinstance(doc, dict) else enumerate(doc[:1]) if isinstance(doc, list) else ()
    for key, value in items:
        if key not in skip:
            yield (*prefix, key)
            yield from paths(value, (*prefix, key), skip)


def mutated(doc, path: tuple, value):
    """A deep copy of `doc` with the field at `path` set to `value` (DELETE: removed)."""
    out = copy.deepcopy(doc)
    parent = out
    for key in path[:-1]:
        parent = parent[key]
    if value is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return out
