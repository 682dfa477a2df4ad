"""The TIFF-surgery core: turns what a vendor module decides into a plan of in-place edits.

Every vendor module describes *what* to remove; this module knows *how* to remove it from a TIFF
without touching image payload. It never decodes pixels and never moves tile data: directories
are rewritten where they stand (they only ever shrink), values are replaced by same-length-or-shorter
values, and every byte that the kept structure no longer references is zeroed. That last rule is
what makes unlinked label directories, dropped tags and writer leftovers vanish without a list of
every place a scanner might hide a name.
"""

import struct

from .. import ranges
from ..errors import FormatError
from .edits import EditPlan
from .tifftags import LAYOUT, Tag, Type, tag_name
from .tiffwrite import directory_size, pack_directory

ADOBE_DEFLATE, BLACK_IS_ZERO, CHUNKY = 8, 1, 1  # Compression, Photometric, PlanarConfiguration


class Surgery:
    """Collects what a vendor module decides, then turns it into a Plan.

    Vendor modules call `destroy` for directories whose image must go (label, macro), `blank`
    for one that must stay linked but lose its pixels, `drop` for tags to remove,
    `replace_ascii` for values to shorten in place and `append_label` to add the drawn label
    (`label`, set only with `anonymize.label: replace`).
    """

    def __init__(self, tiff, label=None):
        self.tiff = tiff
        self.label = label
        self.appended = None       # (description, NewSubfileType or None, strip) of the drawn label
        self.blanked = set()       # directory indexes kept in the chain with their pixels zeroed
        self.destroyed = set()     # directory indexes
        self.dropped = {}          # directory index -> set of tags
        self.replaced = {}         # (directory index, tag) -> bytes
        self.found = {}            # image roles seen, for inspect and the tests
        self.plan = EditPlan()

    def classify(self, role):
        """(directory, role) for every directory, counting the roles in `found`."""
        for directory in self.tiff.directories:
            kind = role(self.tiff, directory)
            self.count(kind)
            yield directory, kind

    def count(self, kind):
        self.found[kind] = self.found.get(kind, 0) + 1

    def destroy(self, directory, why):
        self.destroyed.add(directory.index)
        self.note(f"{why} destroyed")

    def blank(self, directory, why):
        """Keep the directory (a vendor needs it, e.g. for metadata it carries) but zero its
        pixels. The vendor module must also make sure no reader lists it any more."""
        self.blanked.add(directory.index)
        self.note(f"{why} pixels destroyed")

    def drop(self, directory, tag):
        self.dropped.setdefault(directory.index, set()).add(tag)
        if directory.entries[tag].type == Type.ASCII:
            self.plan.removed.append(self.tiff.value(directory, tag))
        self.note(f"{tag_name(tag)} removed")

    def note(self, action):
        if action not in self.plan.actions:
            self.plan.actions.append(action)

    def replace_ascii(self, directory, tag, text, removed_values=(), encoding="latin-1"):
        """Shorten a text value in place. Text read with `Tiff.value` is latin-1 decoded, so
        writing latin-1 gives back the original bytes of whatever is kept."""
        entry = directory.entries[tag]
        data = text.encode(encoding, "xmlcharrefreplace")
        if entry.type == Type.ASCII:
            data += b"\0"
        if len(data) > entry.size:
            raise FormatError(f"directory {directory.index}: new {tag_name(tag)} would be longer")
        self.replaced[(directory.index, tag)] = data
        self.plan.removed.extend(removed_values)

    def append_label(self, description, subfile_type=None):
        """Add the drawn label as a new stripped directory at the end of the chain, its table,
        description and pixels written after the end of the file: nothing of the slide moves.
        A classic TIFF ending near 4 GiB has no room for it: the label is then only destroyed."""
        strip = self.label.deflated()
        if not self.tiff.bigtiff and self.tiff.size + len(strip) + (1 << 12) >= 1 << 32:
            self.note("no drawn label: a classic TIFF cannot grow past 4 GiB")
            return
        self.appended = (description, subfile_type, strip)
        self.count("drawn label")
        self.note("label replaced by a drawn pseudonym label")

    def drop_unlisted(self, directory, allowed):
        """Drop every tag not in the format's `allowed` set (image structure, product names,
        the vendor tags its module handles).

        This is the fail-closed rule: DateTime, Artist, HostComputer, DocumentName, PageName, XMP,
        IPTC, EXIF/GPS sub-directories and any private tag go, and because unreferenced bytes are
        zeroed, whatever a dropped pointer tag pointed to goes with it.
        """
        for tag in list(directory.entries):
            if tag not in allowed:
                self.drop(directory, tag)

    def finish(self):
        """Compute the edits: new chain, rewritten tables, and zeros for everything unreferenced."""
        tiff, plan = self.tiff, self.plan
        kept = [d for d in tiff.directories if d.index not in self.destroyed]
        if not kept:
            raise FormatError("nothing would be left of the slide")
        protected = [(0, tiff.header_size)]
        kept_data, blanked, layout = [], [], []
        appended_at = self._append() if self.appended else 0
        plan.writes.append((tiff.first_pointer_at, self._pack_offset(kept[0].offset)))
        for position, directory in enumerate(kept):
            next_offset = kept[position + 1].offset if position + 1 < len(kept) else appended_at
            table, values = self._rewrite(directory, next_offset)
            plan.writes.append((directory.offset, table))
            plan.writes.extend(values)
            protected.append((directory.offset, len(table)))
            protected.extend((o, len(b)) for o, b in values)
            for tag, entry in directory.entries.items():
                if tag in self.dropped.get(directory.index, ()) or entry.inline:
                    continue
                if (directory.index, tag) not in self.replaced:
                    protected.append((entry.value_offset, entry.size))
                    if tag in LAYOUT:
                        layout.append((entry.value_offset, entry.size))
            (blanked if directory.index in self.blanked else kept_data).append(
                tiff.data_ranges(directory))
        kept_spans = ranges.merge(*kept_data)
        protected_spans = ranges.merge(protected, ranges.from_spans(kept_spans))
        for directory in tiff.directories:
            if directory.index in self.destroyed or directory.index in self.blanked:
                if ranges.overlaps(tiff.data_ranges(directory), protected_spans):
                    raise FormatError(f"directory {directory.index} shares image data with a kept "
                                    "image; its pixels cannot be destroyed")
        plan.zeros = ranges.complement(protected_spans, tiff.size)
        plan.kept_data = ranges.as_pairs(kept_spans)
        plan.blanked = ranges.as_pairs(ranges.merge(*blanked))
        plan.layout = ranges.as_pairs(ranges.merge(layout))
        # A value the format keeps in another tag on purpose (NDPI repeats the fluorescence
        # filter name in its shading data) is not a leak: do not search for it.
        kept_text = {tiff.value(d, tag).strip() for d in kept for tag, e in d.entries.items()
                     if e.type == Type.ASCII and tag not in self.dropped.get(d.index, ())
                     and (d.index, tag) not in self.replaced}
        if self.appended:  # Ventana's drawn label is described `Label_Image` like the old one
            kept_text.add(self.appended[0])
        plan.removed = [v for v in plan.removed if v.strip() not in kept_text]
        return plan

    def _rewrite(self, directory, next_offset):
        """The directory's new table (same place, possibly fewer entries) and replaced values."""
        tiff = self.tiff
        dropped = self.dropped.get(directory.index, set())
        entries, high, value_writes = [], [], []
        for tag, entry in directory.entries.items():
            if tag in dropped:
                continue
            new = self.replaced.get((directory.index, tag))
            high.append(entry.high)
            if new is None:
                entries.append(entry.raw)
                continue
            slot = tiff.slot
            head = struct.pack(tiff.bo + ("HHQ" if tiff.bigtiff else "HHI"), tag, entry.type, len(new))
            if len(new) <= slot:
                entries.append(head + new.ljust(slot, b"\0"))
            else:
                entries.append(head + entry.raw[-slot:])
                value_writes.append((entry.value_offset, new))
        if not entries:
            raise FormatError(f"directory {directory.index} would be left empty")
        count = struct.pack(tiff.bo + tiff.count_code, len(entries))
        table = count + b"".join(entries) + self._pack_offset(next_offset)
        if tiff.ndpi:
            table += b"".join(high)
        return table, value_writes

    def _pack_offset(self, offset):
        return struct.pack(self.tiff.bo + self.tiff.pointer_code, offset)

    def _append(self):
        """Write the drawn label after the end of the file: directory, description, one
        Deflate-compressed 8-bit grayscale strip. Returns where the directory starts."""
        tiff, label = self.tiff, self.label
        description, subfile_type, strip = self.appended
        long_type = Type.LONG8 if tiff.bigtiff else Type.LONG

        def directory(strip_at):
            subfile = [(Tag.NEW_SUBFILE_TYPE, Type.LONG, subfile_type)] if subfile_type is not None else []
            return subfile + [
                (Tag.IMAGE_WIDTH, Type.LONG, label.width), (Tag.IMAGE_LENGTH, Type.LONG, label.height),
                (Tag.BITS_PER_SAMPLE, Type.SHORT, 8),
                (Tag.COMPRESSION, Type.SHORT, ADOBE_DEFLATE),
                (Tag.PHOTOMETRIC, Type.SHORT, BLACK_IS_ZERO),
                (Tag.IMAGE_DESCRIPTION, Type.ASCII, description.encode("ascii")),
                (Tag.STRIP_OFFSETS, long_type, strip_at), (Tag.SAMPLES_PER_PIXEL, Type.SHORT, 1),
                (Tag.ROWS_PER_STRIP, Type.LONG, label.height),
                (Tag.STRIP_BYTE_COUNTS, long_type, len(strip)),
                (Tag.PLANAR_CONFIGURATION, Type.SHORT, CHUNKY)]

        at = (tiff.size + 15) & ~15  # directory with its description, then the strip
        strip_at = (at + directory_size(tiff.bigtiff, directory(0)) + 15) & ~15
        block = pack_directory(tiff.bo, tiff.bigtiff, directory(strip_at), at)
        self.plan.writes.append((at, block + bytes(strip_at - at - len(block)) + strip))
        self.plan.added = [(strip_at, len(strip))]
        return at
