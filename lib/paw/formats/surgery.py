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
from ..errors import FormatError, Unsupported
from . import icc, jpeg
from .allow import c_string
from .base import found
from .edits import EditPlan
from .tiffallow import Blob, Numbers, Text, Vendor, rule_name
from .tifftags import LAYOUT, Tag, Type, tag_name
from .tiffwrite import directory_size, pack_directory

ADOBE_DEFLATE, BLACK_IS_ZERO, CHUNKY = 8, 1, 1  # Compression, Photometric, PlanarConfiguration


class Surgery:
    """Collects what a vendor module decides, then turns it into a Plan.

    Vendor modules call `destroy` for directories whose image must go (label, macro), `blank`
    for one that must stay linked but lose its pixels, `drop` for tags to remove,
    `replace_ascii` for values to shorten in place and `append_label` to add the drawn label
    (`label`, set only with `anonymize.label: replace`). A kept directory's SubIFDs stay only
    with `keep_sub_directories` (OME-TIFF pyramid levels); they are then typed like the rest.
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
        self.children = {}         # directory index -> its kept sub-directories (Tiff.sub_directories)
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

    def keep_sub_directories(self, directory, children):
        """Keep the sub-directories `directory`'s SubIFDs tag lists — all of them, where they
        are, with their tiles; the vendor module types each with `keep_typed`. Without this a
        kept SubIFDs tag refuses the slide (it would point at zeroed bytes)."""
        self.children[directory.index] = list(children)

    def blank(self, directory, why):
        """Keep the directory (a vendor needs it, e.g. for metadata it carries) but zero its
        pixels. The vendor module must also make sure no reader lists it any more."""
        self.blanked.add(directory.index)
        self.note(f"{why} pixels destroyed")

    def drop(self, directory, tag, why=""):
        self.dropped.setdefault(directory.index, set()).add(tag)
        entry = directory.entries[tag]
        if entry.type in (Type.ASCII, Type.BYTE, Type.UNDEFINED) and entry.size <= 1 << 20:
            raw = self.tiff.raw_value(entry)  # every part, also what hides after a NUL
            self.plan.removed.extend(found(self._field(directory, tag), p.decode("latin-1"))
                                     for p in raw.split(b"\0") if p.strip())
        self.note(f"{tag_name(tag)} removed{why}")

    def note(self, action):
        """Record what was done, for people (ledger, inspect). Never pass text taken from the
        file: name the field by its known name or position, or count it (count_note)."""
        if action not in self.plan.actions:
            self.plan.actions.append(action)

    def count_note(self, what, count):
        """A counted action ("3 unknown description fields removed"); the count is the most
        any one directory had (each directory repeats the same fields)."""
        for i, action in enumerate(self.plan.actions):
            number, _, rest = action.partition(" ")
            if rest == what and number.isdigit():
                self.plan.actions[i] = f"{max(int(number), count)} {what}"
                return
        self.plan.actions.append(f"{count} {what}")

    def replace_ascii(self, directory, tag, text, removed_values=(), encoding="latin-1"):
        """Shorten a text value in place. Text read with `Tiff.value` is latin-1 decoded, so
        writing latin-1 gives back the original bytes of whatever is kept. Whatever followed
        the old value's first NUL is not written: the old bytes are zeroed."""
        entry = directory.entries[tag]
        data = text.encode(encoding, "xmlcharrefreplace")
        if entry.type == Type.ASCII:
            data += b"\0"
        self.replace_bytes(directory, tag, data, removed_values)

    def replace_bytes(self, directory, tag, data, removed_values=()):
        """Put `data` (the same length or shorter) in place of a tag's value."""
        entry = directory.entries[tag]
        if len(data) > entry.size:
            raise FormatError(f"{directory.name}: new {tag_name(tag)} would be longer")
        self.replaced[(directory.index, tag)] = data
        where = self._field(directory, tag)
        self.plan.removed.extend(found(f"{v.field} ({where})" if getattr(v, "field", "") else where, v)
                                 for v in removed_values if v)

    @staticmethod
    def _field(directory, tag):
        """A tag's name for inspect, with its directory after the first."""
        return tag_name(tag) + (f" (directory {directory.index})" if directory.index else "")

    def keep_typed(self, directory, rules):
        """Keep a tag only as its rule in `rules` (a vendor's table built on
        tiffallow.STRUCTURE) allows; this is the fail-closed rule for what paw keeps:

        - a tag with no rule is dropped (DateTime, Artist, HostComputer, DocumentName, PageName,
          XMP, IPTC, EXIF/GPS sub-directories, private tags: whatever a dropped pointer tag
          pointed to is zeroed with every other unreferenced byte);
        - image structure must have a numeric type and the count its rule says, else the slide
          is refused (a text-typed structural tag is a hiding place; OpenSlide refuses such
          files too);
        - a text tag stays only if its whole stored value, also after a NUL, is what its kind
          accepts, else it is dropped (or the slide refused when a reader needs it);
        - JPEG tables keep only their table segments; an ICC profile is typed by icc.scrub or
          dropped;
        - vendor values (descriptions, XML) must have been rewritten by the vendor module.
        """
        index = directory.index
        for tag, entry in list(directory.entries.items()):
            if tag in self.dropped.get(index, ()) or (index, tag) in self.replaced:
                continue
            rule = rules.get(tag)
            if rule is None:
                self.drop(directory, tag)
            elif isinstance(rule, Numbers):
                if rule.only_with and self.tiff.number(directory, rule.only_with[0]) != rule.only_with[1]:
                    self.drop(directory, tag, " (means nothing in this image)")
                elif not rule.accepts(entry.type, entry.count):
                    raise FormatError(f"{directory.name} {tag_name(tag)}: not {rule.label} "
                                      f"(type {entry.type}, count {entry.count})")
            elif isinstance(rule, Text):
                text = c_string(self.tiff.raw_value(entry)) if entry.type == Type.ASCII else None
                if text is None or not rule.kind.accepts(text):
                    if rule.required:  # a reader needs it as the vendor writes it: refuse, by name
                        raise Unsupported(f"refused: {directory.name} {tag_name(tag)} is not "
                                          f"{rule_name(rule)} (text added to what the scanner writes?)")
                    self.drop(directory, tag, f" (not {rule_name(rule)})")
            elif isinstance(rule, Blob) and rule.what == "jpeg-tables":
                self._jpeg_tables(directory, entry)
            elif isinstance(rule, Blob) and rule.what == "icc":
                self._icc(directory, entry)
            elif isinstance(rule, Vendor):
                raise FormatError(f"{directory.name} {tag_name(tag)}: the vendor module left it unread")
            else:
                self.drop(directory, tag)

    def _jpeg_tables(self, directory, entry):
        """Keep only the quantisation/Huffman/restart segments of JPEGTables (the tiles need
        them); COM and APPn segments, and anything after EOI, go."""
        data = self.tiff.raw_value(entry)
        try:
            found = jpeg.segments(data)
        except FormatError:
            raise FormatError(f"{directory.name} JPEGTables: not a JPEG table stream") from None
        kept = [data[at - 4:at + length] for marker, at, length in found if marker in jpeg.TABLES]
        new = b"\xff\xd8" + b"".join(kept) + b"\xff\xd9"
        if new != data:
            texts = [data[at:at + length].decode("latin-1") for marker, at, length in found
                     if marker not in jpeg.TABLES]
            self.replace_bytes(directory, entry.tag, new, [t for t in texts if t.strip("\0 ")])
            self.note("JPEGTables: comment and application segments removed")

    def _icc(self, directory, entry):
        profile = self.tiff.raw_value(entry)
        try:
            new, blanked, removed = icc.scrub(profile)
        except icc.Implausible as exc:  # colour data no real profile holds: never change colour
            raise FormatError(f"{directory.name} ICC profile: {exc}") from None
        except (FormatError, ValueError, IndexError, struct.error):
            self.drop(directory, entry.tag, " (an ICC profile paw cannot type)")
            return
        if new != profile:
            self.replace_bytes(directory, entry.tag, new)
            self.note("ICC profile: creation date and unknown fields cleared")
        if blanked:
            self.count_note("ICC profile texts blanked", blanked)
        if removed:
            self.count_note("ICC profile tags outside the ICC tag table removed", removed)

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
            children = self.children.get(directory.index, [])
            if Tag.SUB_IFDS in directory.entries and Tag.SUB_IFDS not in self.dropped.get(directory.index, ()) \
                    and not children:
                raise FormatError(f"{directory.name}: SubIFDs kept without its sub-directories")
            # Sub-directories keep their own next pointers (their chain is the SubIFDs order).
            for table_of, next_at in [(directory, next_offset)] + [(c, c.next_offset) for c in children]:
                table, values = self._rewrite(table_of, next_at)
                plan.writes.append((table_of.offset, table))
                plan.writes.extend(values)
                protected.append((table_of.offset, len(table)))
                protected.extend((o, len(b)) for o, b in values)
                for tag, entry in table_of.entries.items():
                    if tag in self.dropped.get(table_of.index, ()) or entry.inline:
                        continue
                    if (table_of.index, tag) not in self.replaced:
                        protected.append((entry.value_offset, entry.size))
                        if tag in LAYOUT:
                            layout.append((entry.value_offset, entry.size))
                (blanked if table_of.index in self.blanked else kept_data).append(
                    tiff.data_ranges(table_of))
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
        # A removed value that text paw keeps still holds (the product line of a first item
        # paw could not type repeats the kept one of another directory; a drawn Ventana label
        # is described `Label_Image` like the old one) is not searched for: kept text is typed,
        # and the residual audit explains every character of it.
        kept += [c for d in kept for c in self.children.get(d.index, [])]
        kept_text = [tiff.value(d, tag) for d in kept for tag, e in d.entries.items()
                     if e.type == Type.ASCII and tag not in self.dropped.get(d.index, ())
                     and (d.index, tag) not in self.replaced]
        kept_text += [data.decode("latin-1") for data in self.replaced.values()]
        if self.appended:
            kept_text.append(self.appended[0])
        plan.removed = list(dict.fromkeys(v for v in plan.removed
                                          if v.strip() and not any(v.strip() in k for k in kept_text)))
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
            raise FormatError(f"{directory.name} would be left empty")
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
