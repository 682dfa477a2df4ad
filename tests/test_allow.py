"""The shared fail-closed primitives: typed values, printable runs, JPEG segments, ICC text."""

import struct

import pytest

from paw.errors import FormatError
from paw.formats import icc, jpeg
from paw.formats.allow import (EMPTY, Integer, Number, OneOf, Pattern, Residual, printable_runs,
                               unexplained)


@pytest.mark.parametrize("kind, good, bad", [
    (Number(units=("um",)), ["0.2520", "40", " 1.5e-3 ", "0.25 um"], ["0.25 DOE", "1/2", "DOE", "", "40x"]),
    (Integer(low=1, high=80), ["20", "80"], ["0", "81", "20.5", "20 S26-047119"]),
    (OneOf("RIGHT", "UP"), ["RIGHT"], ["right", "RIGHT ", "LEFT"]),
    (Pattern(r"Aperio Image Library v\d+(\.\d+)*"), ["Aperio Image Library v12.0.15"],
     ["Aperio Image Library v12.0.15 DOE", "Aperio Image Library"]),
    (Number() | EMPTY, ["", "3"], ["x"]),
])
def test_kinds_accept_only_their_shape(kind, good, bad):
    assert all(kind.accepts(t) for t in good)
    assert not any(kind.accepts(t) for t in bad)


def test_unexplained_names_the_field_never_the_value():
    residuals = [Residual("key 'AppMag'", "20"), Residual("key 'AppMag'", "DOE^JANE"), Residual("pad", "\0\0")]
    reasons = unexplained(residuals, lambda r: r.text.isdigit())
    assert reasons == ["key 'AppMag': text the allow-list does not explain"]


def test_printable_runs_in_every_encoding():
    name = "OKONKWO^BEATRIX"
    for encoded in (name.encode(), "MÜLLER^JÖRG".encode("latin-1"), name.encode("utf-16-le"),
                    name.encode("utf-16-be")):
        runs = printable_runs(b"\x00\x01\x02" + encoded + b"\x00\xff\x00")
        assert any(t.strip("\0") in (name, "MÜLLER^JÖRG") for _, t in runs), encoded
    assert printable_runs(b"\x00abc\x00de\x01") == []


def _segment(marker, payload):
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def test_jpeg_header_segments():
    jfif = _segment(0xE0, b"JFIF\0\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    tables = _segment(0xDB, bytes(65)) + _segment(0xC4, bytes(20)) + _segment(0xC0, bytes(15))
    scan = _segment(0xDA, bytes(10)) + b"\x12\x34\xff\x00\x56\xff\xd9"
    clean = b"\xff\xd8" + jfif + tables + scan
    assert jpeg.unexplained(clean) == []
    hostile = b"\xff\xd8" + jfif + _segment(0xFE, b"S26-047119") + _segment(0xE1, b"Exif\0\0") + tables + scan
    assert jpeg.unexplained(hostile) == ["COM", "APP1"]
    thumbnail = b"\xff\xd8" + _segment(0xE0, b"JFIF\0\x01\x01\x00\x00\x01\x00\x01\x01\x01abc") + tables + scan
    assert jpeg.unexplained(thumbnail) == ["APP0"]
    assert jpeg.unexplained(b"\xff\xd8" + tables + b"\xff\xd9") == []  # JPEGTables
    with pytest.raises(FormatError):
        jpeg.segments(b"\xff\xd8" + _segment(0xFE, b"x")[:3])


def _icc(tags):
    """A minimal profile: header, tag table, tag data."""
    table, data = b"", b""
    at = 128 + 4 + 12 * len(tags)
    for signature, payload in tags:
        table += struct.pack(">4sII", signature, at + len(data), len(payload))
        data += payload + bytes(-len(payload) % 4)
    body = struct.pack(">I", len(tags)) + table + data
    header = bytearray(128)
    struct.pack_into(">I", header, 0, 128 + len(body))
    header[36:40] = b"acsp"
    return bytes(header) + body


def test_icc_text_tags():
    desc = b"desc" + bytes(4) + struct.pack(">I", 9) + b"sRGB v4\0\0" + bytes(4) + struct.pack(">I", 4) \
        + "JANE".encode("utf-16-be")
    mluc = b"mluc" + bytes(4) + struct.pack(">II", 1, 12) + b"enUS" + struct.pack(">II", 8, 28) \
        + "DOE\0".encode("utf-16-be")
    profile = _icc([(b"desc", desc), (b"cprt", mluc), (b"wtpt", b"XYZ " + bytes(16))])
    assert icc.texts(profile) == [("desc", "sRGB v4"), ("desc", "JANE"), ("cprt", "DOE")]
    assert [size for _, size in icc.text_spans(profile)] == [len(desc) - 8, len(mluc) - 8]
    with pytest.raises(FormatError):
        icc.tags(profile[:-4])
