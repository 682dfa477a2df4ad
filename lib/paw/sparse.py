"""Reading large files without reading their holes.

Slides arrive sparse (synthetic test slides of 20 GB, scanners that preallocate) and paw's
checks only look for non-zero or searched bytes: holes read as zeros, so they are skipped with
SEEK_DATA/SEEK_HOLE. Used by the formats (applying zero ranges) and by verification.
"""

import errno
import os


def data_segments(fd, offset, length):
    """(start, end) of the parts of a byte range that are not holes in a sparse file."""
    end = offset + length
    while offset < end:
        try:
            data_at = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # only a hole from here to EOF
                return
            data_at = offset              # file system without SEEK_DATA: read everything
        if data_at >= end:
            return
        try:
            hole_at = min(os.lseek(fd, data_at, os.SEEK_HOLE), end)
        except OSError:
            hole_at = end
        yield data_at, hole_at
        offset = hole_at


def nonzero_blocks(fd, offset, length, block_size=1 << 20):
    """(offset, bytes) of each block in the range that holds a non-zero byte; holes skipped."""
    for position, end in data_segments(fd, offset, length):
        while position < end:
            block = os.pread(fd, min(block_size, end - position), position)
            if not block:
                return
            if block.count(0) != len(block):
                yield position, block
            position += len(block)


def first_nonzero(path, gaps):
    """The offset of the first non-zero byte inside the (offset, length) `gaps`, or None."""
    with open(path, "rb") as fh:
        for start, length in gaps:
            for position, block in nonzero_blocks(fh.fileno(), start, length):
                return position + len(block) - len(block.lstrip(b"\0"))
    return None
