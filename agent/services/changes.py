"""Which list entries a commit touched, from the datastore's change set (agent/datastore/edit.py).

Commit listeners use it to look only at the entries that changed instead of
re-reading every entry of a large list on every commit.
"""

from __future__ import annotations

from agent.datastore.edit import ChangeSet


def touched_keys(touched: ChangeSet, list_tags: tuple[str, ...]) -> set[str] | None:
    """First key values of the entries of the list at ``list_tags`` (Clark tags from the top) that may differ.

    None when the list may have changed as a whole (``touched`` unknown, or
    the list or one of its ancestors changed whole). Raises nothing.
    """
    if touched is None:
        return None
    depth = len(list_tags)
    keys: set[str] = set()
    for path in touched:
        tags = tuple(step[0] for step in path[:depth])
        if len(path) < depth:
            if tags == list_tags[: len(path)]:
                return None
            continue
        if tags == list_tags:
            entry = path[depth - 1]
            if len(entry) < 2:
                return None
            keys.add(entry[1])
    return keys
