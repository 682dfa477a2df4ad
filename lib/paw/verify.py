"""Independent verification of an anonymized file, before it may leave for the outbox.

Independent of the writer: the file is re-read with tifffile (not paw's parser), the format is
re-detected, the vendor module's checks run on tifffile's view, the kept image payload must be
exactly where it was, every byte that tifffile does not see referenced (header, directories, tag
values, kept payload) must be zero — that is where destroyed label and macro pixels were — and
every byte outside the kept payload (or the whole file with full_scan) is searched for every
removed value, as ASCII and as UTF-16LE.
"""

import re

from .formats.tiff import PRODUCT, STRUCTURAL

MIN_SEARCH_LENGTH = 4   # shorter values ("1", "12") match by chance and identify nobody
CHUNK = 8 << 20


class VerificationFailed(Exception):
    """The anonymized file must not reach the outbox; the message is the one-line reason."""


def verify(path, module, plan, options, extra_values=()):
    import tifffile

    with tifffile.TiffFile(path, is_ndpi=False) as tf:
        problems = module.check(tf, options)
        allowed = STRUCTURAL | PRODUCT | ({270} if module.NAME == "aperio" else set())
        kept = []
        for i, page in enumerate(tf.pages):
            for tag in page.tags:
                if tag.code not in allowed:
                    problems.append(f"tag {tag.code} ({tag.name}) left in directory {i}")
            kept.extend((o, n) for o, n in zip(page.dataoffsets, page.databytecounts) if n)
        structure = _structure(tf)
    if sorted(kept) != sorted(map(tuple, plan.kept_data)):
        problems.append("kept image data is not where it was")
    if problems:
        raise VerificationFailed(problems[0])
    stray = first_nonzero(path, structure + kept)
    if stray is not None:
        raise VerificationFailed(f"unreferenced bytes at {stray} are not cleared")
    values = {v for v in list(plan.removed) + list(extra_values) if len(v.strip()) >= MIN_SEARCH_LENGTH}
    hit = find_any(path, values, None if options.full_scan else sorted(kept))
    if hit:
        raise VerificationFailed(f"a removed value is still in the file at byte {hit}")


def _structure(tf):
    """(offset, length) of the header, every directory and every out-of-line tag value."""
    fmt = tf.tiff
    ranges = [(0, 16 if fmt.version == 43 else 8)]
    for page in tf.pages:
        ranges.append((page.offset, fmt.tagnosize + len(page.tags) * fmt.tagsize + fmt.offsetsize))
        for tag in page.tags:
            if tag.valuebytecount > fmt.tagoffsetthreshold:
                ranges.append((tag.valueoffset, tag.valuebytecount))
    return ranges


def first_nonzero(path, referenced):
    """The offset of the first non-zero byte outside `referenced`, or None."""
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        for start, length in _gaps(sorted(referenced), fh.tell()):
            position, end = start, start + length
            while position < end:
                fh.seek(position)
                block = fh.read(min(CHUNK, end - position))
                stripped = block.lstrip(b"\0")
                if stripped:
                    return position + len(block) - len(stripped)
                position += len(block)
    return None


def search_pattern(values):
    needles = set()
    for value in values:
        needles.add(value.encode("utf-8"))
        needles.add(value.encode("utf-16-le"))
    needles = sorted(needles, key=len, reverse=True)
    return re.compile(b"|".join(re.escape(n) for n in needles)), max(map(len, needles))


def find_any(path, values, skip_ranges=None):
    """The offset of the first removed value found outside `skip_ranges`, or None."""
    if not values:
        return None
    pattern, longest = search_pattern(values)
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        for start, length in _gaps(skip_ranges or [], size):
            position, end = start, start + length
            while position < end:
                fh.seek(position)
                block = fh.read(min(CHUNK + longest, end - position))
                match = pattern.search(block)
                if match:
                    return position + match.start()
                position += CHUNK
    return None


def _gaps(ranges, size):
    position = 0
    for start, length in sorted(ranges):
        if start > position:
            yield position, start - position
        position = max(position, start + length)
    if position < size:
        yield position, size - position
