"""The format-neutral value search of verification (paw.verify.find_any): every removed value
and identifier-like name part, in UTF-8, Latin-1, UTF-16LE and UTF-16BE, in letters of any case
(red team 19, F2: a removed `ferranda` kept as `Ferranda`, a file `S24-0471D5` whose name was
kept as `s24-0471d5`)."""

import pytest

from paw import verify
from paw.verify import find_any, name_values

ENCODINGS = ("utf-8", "latin-1", "utf-16-le", "utf-16-be")
VALUES = {   # removed value -> how a kept field spells it
    "JSMITH4711": "jsmith4711",
    "ferranda": "Ferranda",
    "S24-0471D5": "s24-0471d5",
    "MÜLLER Jörg": "müller JÖRG",
    "Ærøskøbing-Ø": "æRØSKØBING-ø",
}


def _file(tmp_path, payload, where):
    body = bytearray(b"\x00\x10\xff" * 4000)
    at = {"start": 0, "middle": len(body) // 2, "end": len(body)}[where]
    body[at:at] = payload
    path = tmp_path / "file.bin"
    path.write_bytes(bytes(body))
    return str(path), at


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("where", ["start", "middle", "end"])
@pytest.mark.parametrize("removed", sorted(VALUES))
def test_a_removed_value_is_found_in_another_case(tmp_path, removed, where, encoding):
    path, at = _file(tmp_path, VALUES[removed].encode(encoding), where)
    assert find_any(path, [removed]) == at


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_the_original_name_is_found_in_another_case(tmp_path, encoding):
    needle = "s24-0471d5".encode(encoding)
    path, at = _file(tmp_path, b"channel " + needle, "middle")
    hit = find_any(path, name_values("S24-0471D5"))   # the part "0471D5" holds it too
    assert hit is not None and at + 8 <= hit < at + 8 + len(needle)


def test_a_value_across_two_blocks_is_found(tmp_path, monkeypatch):
    monkeypatch.setattr(verify, "CHUNK", 1000)
    path, at = _file(tmp_path, "Müller-Lüdenscheidt".encode("utf-16-le"), "middle")
    assert find_any(path, ["MÜLLER-LÜDENSCHEIDT"]) == at


def test_short_values_are_found_only_as_written(tmp_path):
    """A 4-letter value in any case would match the formats' own codes: DICOM's removed "TEXT"
    is an ICC profile's "text" tag type in every real highdicom file."""
    path, at = _file(tmp_path, b"\x00\x00\x04<text\x00\x00", "middle")
    assert find_any(path, ["TEXT"]) is None
    assert find_any(path, ["text"]) == at + 4


def test_nothing_found_in_a_clean_file(tmp_path):
    path, _ = _file(tmp_path, b"Plan-Apochromat 20x/0.8", "middle")
    assert find_any(path, list(VALUES) + ["S24-047119"]) is None


def test_the_case_fold_maps_every_latin1_capital():
    for capital in range(0xC0, 0xDF):
        if capital == 0xD7:   # the multiplication sign has no small letter
            continue
        small = bytes([capital]).decode("latin-1").lower().encode("latin-1")
        assert bytes([capital]).translate(verify.CASE_FOLD) == small.translate(verify.CASE_FOLD)
        assert chr(capital).encode("utf-8").translate(verify.CASE_FOLD) == \
            chr(capital).lower().encode("utf-8").translate(verify.CASE_FOLD)
