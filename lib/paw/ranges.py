"""Byte ranges as numpy arrays of (offset, length) rows, merged without Python loops.

A 20 GB slide has about 100,000 tiles; merging, complementing and comparing their ranges one by
one in Python would make the cost per slide grow with its size. Tiles are usually stored back
to back, so merged they are a handful of spans: that is what the journal keeps and what
verification compares.
"""

import numpy as np


def array(ranges):
    """An (N, 2) int64 array of (offset, length), zero lengths dropped."""
    a = np.asarray(ranges, dtype=np.int64).reshape(-1, 2)
    return a if a[:, 1].all() else a[a[:, 1] > 0]


def merge(*parts):
    """Merged spans of every given range set, as an (M, 2) array of (start, end), sorted."""
    a = np.concatenate([array(p) for p in parts]) if parts else np.empty((0, 2), np.int64)
    if not len(a):
        return np.empty((0, 2), np.int64)
    if np.any(a[1:, 0] < a[:-1, 0]):  # tiles are usually already in file order
        a = a[np.argsort(a[:, 0], kind="stable")]
    starts, ends = a[:, 0], a[:, 0] + a[:, 1]
    reach = np.maximum.accumulate(ends)
    new = np.empty(len(a), bool)
    new[0] = True
    new[1:] = starts[1:] > reach[:-1]
    first = np.flatnonzero(new)
    last = np.append(first[1:] - 1, len(a) - 1)
    return np.column_stack((starts[first], reach[last]))


def from_spans(spans):
    """Merged (start, end) spans back as (offset, length) rows."""
    return np.column_stack((spans[:, 0], spans[:, 1] - spans[:, 0])) if len(spans) else array([])


def as_pairs(spans):
    """Merged (start, end) spans as a list of [offset, length] (for JSON and comparison)."""
    return [[int(s), int(e - s)] for s, e in spans]


def complement(spans, size):
    """(offset, length) of every byte in [0, size) outside the merged spans."""
    gaps, position = [], 0
    for start, end in spans:
        if start > position:
            gaps.append((position, int(start - position)))
        position = max(position, int(end))
    if position < size:
        gaps.append((position, size - position))
    return gaps


def covers(outer, inner):
    """Whether the (offset, length) ranges `inner` are non-empty and all inside `outer`."""
    return bool(len(array(inner))) and np.array_equal(merge(outer, inner), merge(outer))


def overlaps(ranges, spans):
    """Whether any (offset, length) range touches one of the merged spans."""
    a = array(ranges)
    if not len(a) or not len(spans):
        return False
    i = np.searchsorted(spans[:, 0], a[:, 0] + a[:, 1], side="left") - 1
    valid = i >= 0
    return bool(np.any(spans[i[valid], 1] > a[valid, 0]))
