"""Zeiss CZI: real ZEN files and synthetic slide scans through the job, read back with
independent readers (pylibCZIrw for pixels and metadata, czifile for attachments, slideio for
what a viewer lists), and hostile variants that must be delivered clean or quarantined."""

import hashlib
import os
import shutil
import struct

import pytest

from checks import leaked
from conftest import shared_fixture
from synth import czi as synth

pyczi = pytest.importorskip("pylibCZIrw.czi", reason="pylibCZIrw (requirements-dev.txt) not installed")
czifile = pytest.importorskip("czifile", reason="czifile (requirements-dev.txt) not installed")

FIXTURES = ["DAPI_GFP.czi", "S3_1Pos_2Mosaic_T1_Z1_CH1.czi", "WellD6-7_S2.czi"]
# What each real file says about who made it, when and where (public test data), read from
# the files themselves: UserName, dates, the audit trail's paths, scene and session names.
IDENTIFYING = {
    "DAPI_GFP.czi": ["M1SRH", "2016-12-01T16:13:46", "C:\\Users\\M1SRH", "Channel2-01-A-01.tif",
                     "12/01/2016 15:19:55"],
    "S3_1Pos_2Mosaic_T1_Z1_CH1.czi": ["F:\\Github\\czitools", "2021-06-15T06:09:43", "m1srh"],
    "WellD6-7_S2.czi": ["Castor Simulation", "2023-01-06T10:42:50", "IncubationRecording",
                        "LSM - 20230106_113955", "638085984862790509"],
}


def pixels(path):
    """SHA-1 of every plane of every scene, read by pylibCZIrw (libCZI)."""
    digests = []
    with pyczi.open_czi(path) as doc:
        box = doc.total_bounding_box
        for scene in sorted(doc.scenes_bounding_rectangle) or [None]:
            for c in range(*box["C"]):
                for t in range(*box.get("T", (0, 1))):
                    for z in range(*box.get("Z", (0, 1))):
                        plane = {"C": c, "T": t, "Z": z}
                        image = doc.read(plane=plane, scene=scene) if scene is not None else doc.read(plane=plane)
                        digests.append(hashlib.sha1(image.tobytes()).hexdigest())
    return digests


def metadata(path):
    with pyczi.open_czi(path) as doc:
        return doc.raw_metadata


def attachments(path):
    with czifile.CziFile(path) as f:
        return sorted(a.attachment_entry.name for a in f.attachments())


def slideio_aux(path):
    """slideio's auxiliary images (in a child process: slideio crashes on some malformed CZIs)."""
    import subprocess
    import sys
    pytest.importorskip("slideio")
    code = "import sys, slideio; print(sorted(slideio.open_slide(sys.argv[1], 'CZI').get_aux_image_names()))"
    view = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, timeout=120)
    assert view.returncode == 0, view.stderr[-300:]
    return eval(view.stdout)  # a printed list of names


def only_output(lab):
    [name] = lab.outbox_files()
    return os.path.join(lab.outbox, name)


@pytest.mark.parametrize("name", FIXTURES)
def test_real_czi_reaches_the_outbox_with_identical_pixels(lab, name):
    source = shared_fixture("zeiss-czi", name)
    shutil.copyfile(source, os.path.join(lab.inbox, name))
    before = metadata(source)
    for value in IDENTIFYING[name]:
        assert value.lower() in before.lower() or value.encode() in open(source, "rb").read(), value
    assert lab.run() == 0, lab.rows()
    output = only_output(lab)
    assert output.endswith(".czi") and lab.rows()[0]["format"] == "czi"
    assert pixels(output) == pixels(source)
    after = metadata(output)
    assert "UserName" not in after and "AcquisitionDateAndTime" not in after and "AuditTrail" not in after
    assert "<Scaling>" in after and "<Channels>" in after and "PixelType" in after
    assert leaked(output, IDENTIFYING[name]) == [] and leaked(output, [v.upper() for v in IDENTIFYING[name]]) == []
    assert "Thumbnail" not in attachments(output) and "EventList" not in attachments(output)
    assert set(attachments(output)) <= {"TimeStamps"}
    present = [path for path in KEPT if _values(before, path)]
    assert len(present) >= 5, present
    for path in KEPT:   # optics and geometry stay, value for value
        assert _values(after, path) == _values(before, path), path


KEPT = ["Metadata/Information/Image/SizeX", "Metadata/Information/Image/PixelType",
        "Metadata/Information/Image/Dimensions/Channels/Channel/@Name",
        "Metadata/Information/Image/Dimensions/Channels/Channel/EmissionWavelength",
        "Metadata/Information/Instrument/Objectives/Objective/@Name",
        "Metadata/Information/Instrument/Objectives/Objective/LensNA",
        "Metadata/Scaling/Items/*/Value", "Metadata/DisplaySetting/Channels/Channel/Color"]


def _values(xml, path):
    import xml.etree.ElementTree as ET
    root = ET.fromstring(xml)
    element_path, _, attribute = path.partition("/@")
    found = root.findall(element_path)
    return sorted(str(e.get(attribute)) if attribute else (e.text or "").strip() for e in found)


@pytest.mark.parametrize("name", ["DAPI_GFP.czi", "WellD6-7_S2.czi"])   # slideio has no zstd
def test_slideio_reads_the_same_scenes(tmp_path, name):
    """slideio crashes (SIGSEGV) on a CZI without Scaling/Items or Dimensions/Channels: it runs
    in a child process so such a regression fails this test instead of the whole run."""
    import subprocess
    import sys
    pytest.importorskip("slideio")
    from paw import formats
    source = shared_fixture("zeiss-czi", name)
    output = str(tmp_path / name)
    shutil.copyfile(source, output)
    options = type("Options", (), {"keep_macro": False, "full_scan": False})()
    handler = formats.identify(output)
    plan = handler.plan(output, options).plan
    plan.apply(output)
    assert handler.check(output, plan, options) == []
    code = ("import hashlib, sys, slideio\n"
            "s = slideio.open_slide(sys.argv[1], 'CZI')\n"
            "print([hashlib.sha1(s.get_scene(i).read_block().tobytes()).hexdigest() "
            "for i in range(s.num_scenes)], s.get_scene(0).resolution)")
    views = [subprocess.run([sys.executable, "-c", code, p], capture_output=True, text=True, timeout=120)
             for p in (source, output)]
    assert views[1].returncode == 0, views[1].stderr[-300:]
    assert views[0].stdout == views[1].stdout


def test_synthetic_slide_scan_loses_label_preview_and_identifiers(lab, tmp_path):
    """Label and SlidePreview are nested CZIs: listed by czifile and slideio before, gone after."""
    source = str(tmp_path / "scan.czi")
    planted = synth.write(source)
    assert attachments(source) == ["EventList", "Label", "SlidePreview", "Thumbnail", "TimeStamps"]
    assert {"Label", "SlidePreview", "Thumbnail"} <= set(slideio_aux(source))
    assert leaked(source, planted.values()) != []
    shutil.copyfile(source, os.path.join(lab.inbox, "S24-4711 A1.czi"))
    assert lab.run() == 0, lab.rows()
    output = only_output(lab)
    assert attachments(output) == ["TimeStamps"] and slideio_aux(output) == []
    assert pixels(output) == pixels(source)
    assert leaked(output, list(planted.values()) + ["S24-4711"]) == []
    removed = lab.rows()[0]["removed"]
    assert "label image destroyed" in removed and "macro image destroyed" in removed


def test_inspect_names_the_label_and_preview(lab, tmp_path, capsys):
    source = str(tmp_path / "scan.czi")
    synth.write(source)
    assert lab.run("inspect", source) == 0
    out = capsys.readouterr().out
    assert "Zeiss CZI (czi)" in out and "label x1" in out and "macro x1" in out
    assert synth.PLANTED["user"] in out   # inspect shows the values it would remove (by hand, on the host)


def _hostile(tmp_path, **options):
    path = str(tmp_path / "hostile.czi")
    with open(path, "wb") as fh:
        fh.write(synth.build(**options))
    return path


SECRET = "Smith, John 1970-01-01"    # never fits a kept field's pattern (comma, date)
SECRETS = [SECRET, "PATIENT-4711"]


def _segment(ident, payload):
    return synth.segment(ident, payload)


HOSTILE = {
    # class: metadata XML -------------------------------------------------------------------
    "scene name": dict(planted={"scene": SECRET}),
    "channel name that is not a name": dict(channels=("DAPI", SECRET)),
    "comment in the XML": dict(extra_xml=f"<!-- {SECRET} -->"),
    "unknown element": dict(extra_xml=f"<Layers><Layer Name=\"{SECRET}\"><Text>{SECRET}</Text></Layer></Layers>"),
    "processing instruction": dict(extra_xml=f"<?zen {SECRET}?>"),
    "CDATA in an unknown element": dict(extra_xml=f"<Notes><![CDATA[{SECRET}]]></Notes>"),
    "value in a kept element that is not a number": dict(
        extra_xml=f"<Information><Image><SizeZ>{SECRET}</SizeZ></Image></Information>"),
    "UTF-16 text in an unknown element": dict(extra_xml="<Blob>" + SECRET.encode("utf-16-le").hex() + "</Blob>"),
    # class: segments outside the XML --------------------------------------------------------
    "deleted segment with a stale XML": dict(deleted_payload=f"<ImageDocument>{SECRET}</ImageDocument>".encode()),
    "deleted segment with UTF-16": dict(deleted_payload=SECRET.encode("utf-16-le")),
    "deleted segment with Latin-1": dict(deleted_payload="Müller, Jürgen 1970".encode("latin-1")),
    "attachment outside the directory": dict(extra_segments=[_segment(
        b"ZISRAWATTACH", (struct.pack("<q8s", 16, bytes(8)) + struct.pack(
            "<2s10sqi16s8s80s", b"A1", bytes(10), 0, 0, bytes(16), b"JPG", b"Notes")).ljust(256, b"\0")
        + SECRET.encode())]),
    "event list text": dict(planted={"event": SECRET}),
    "subblock acquisition time": dict(planted={"date": "1970-01-01T00:00:00 " + SECRET}),
    "label as JPEG instead of nested CZI": dict(nested=False),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_czi_is_delivered_clean(lab, tmp_path, case):
    """Each hiding place is emptied by the scrubber (not merely caught by the audit): the slide
    reaches the outbox without the value."""
    options = HOSTILE[case]
    source = _hostile(tmp_path, **options)
    data = open(source, "rb").read()
    assert any(e in data for s in SECRETS + ["Müller"] for e in (s.encode(), s.encode("utf-16-le"),
                                                                  s.encode("latin-1", "ignore"))), case
    shutil.move(source, os.path.join(lab.inbox, "hostile.czi"))
    assert lab.run() == 0, lab.rows()[0]["error"]
    output = only_output(lab)
    assert leaked(output, SECRETS + ["Müller, Jürgen"]) == [], case
    assert "Müller".encode("latin-1") not in open(output, "rb").read()
    assert pixels(output) == pixels(_hostile(tmp_path, **options))


def _mutated(tmp_path, change):
    data = bytearray(synth.build())
    change(data)
    path = str(tmp_path / "mutated.czi")
    open(path, "wb").write(data)
    return path


REFUSED = {
    "trailing bytes after the last segment": (lambda d: d.extend(SECRET.encode()), "ends inside"),
    "unknown segment Id": (lambda d: d.extend(_segment(b"ZISRAWNOTES", SECRET.encode())), "unknown Id"),
    "second metadata segment": (lambda d: d.extend(_segment(b"ZISRAWMETADATA", struct.pack("<ii", 8, 0).ljust(256, b"\0")
                                                             + b"<a>x</a>")), "metadata segment"),
    "version 2.0": (lambda d: struct.pack_into("<i", d, 32, 2), "version 2.0"),
    "multi-part file": (lambda d: struct.pack_into("<i", d, 80, 1), "multi-part"),
    "segment off the grid": (lambda d: struct.pack_into("<q", d, 16, 520), "impossible size"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_czi_not_understood_is_quarantined_with_one_line(lab, tmp_path, case):
    change, reason = REFUSED[case]
    shutil.move(_mutated(tmp_path, change), os.path.join(lab.inbox, "odd.czi"))
    assert lab.run() == 3 and lab.quarantined() == ["odd.czi"]
    text = open(os.path.join(lab.quarantine, "odd.czi.reason.txt")).read()
    assert reason in text and "\n" not in text.strip() and SECRET not in text


def test_jpeg_subblock_with_a_comment_is_refused(lab, tmp_path):
    """Tile payload is not read, but JPEG subblock headers are sampled: COM text is found."""
    shutil.move(_hostile(tmp_path, jpeg_tiles=SECRET.encode()), os.path.join(lab.inbox, "j.czi"))
    assert lab.run() == 3
    assert "COM segment" in open(os.path.join(lab.quarantine, "j.czi.reason.txt")).read()


def test_jpeg_subblocks_without_text_pass(lab, tmp_path):
    shutil.move(_hostile(tmp_path, jpeg_tiles=True), os.path.join(lab.inbox, "j.czi"))
    assert lab.run() == 0, lab.rows()


def test_audit_refuses_what_the_scrubber_would_have_missed(tmp_path, monkeypatch):
    """The audit is written against the table, not the scrubber: a scrubber that keeps an
    element it should not (here, by a widened table) is caught by the unchanged audit."""
    from paw import formats
    from paw.formats import czi
    source = _hostile(tmp_path)
    options = type("Options", (), {"keep_macro": False, "full_scan": False})()
    widened = dict(czi.XML_KEEP, **{"Metadata/Information/Document": czi.CONTAINER,
                                    "Metadata/Information/Document/UserName": czi.Pattern(".*")})
    monkeypatch.setattr(czi, "XML_KEEP", widened)
    handler = formats.identify(source)
    plan = handler.plan(source, options).plan
    monkeypatch.undo()
    plan.apply(source)
    problems = handler.check(source, plan, options)
    assert any("Document" in p for p in problems), problems
    assert not any(synth.PLANTED["user"] in p for p in problems)


def test_audit_refuses_a_kept_value_the_table_does_not_accept(tmp_path, monkeypatch):
    """A scrubber whose channel-name kind accepted anything keeps a name with a date in it;
    the audit (still on the real table) names the field and not the value."""
    from paw import formats
    from paw.formats import czi
    source = _hostile(tmp_path, channels=(SECRET,))
    options = type("Options", (), {"keep_macro": False, "full_scan": False})()
    widened = dict(czi.XML_KEEP, **{f"{czi._CHANNEL}/@Name": czi.Pattern(".*")})
    monkeypatch.setattr(czi, "XML_KEEP", widened)
    handler = formats.identify(source)
    plan = handler.plan(source, options).plan
    monkeypatch.undo()
    plan.apply(source)
    problems = handler.check(source, plan, options)
    assert any(p.endswith("Channel/@Name: text the allow-list does not explain") for p in problems), problems
    assert not any(SECRET in p for p in problems)


def test_czi_plan_round_trips_through_the_journal(tmp_path):
    import json

    from paw import formats
    source = _hostile(tmp_path)
    options = type("Options", (), {"keep_macro": False, "full_scan": False})()
    plan = formats.identify(source).plan(source, options).plan
    data = json.loads(json.dumps(plan.to_json()))
    assert json.loads(json.dumps(formats.plan_from_json("czi", data).to_json())) == data


BIOFORMATS = os.environ.get("PAW_BIOFORMATS_JAR", "/opt/bioformats/bioformats_package.jar")


@pytest.mark.skipif(not (shutil.which("java") and os.path.exists(BIOFORMATS)),
                    reason="Bio-Formats (java + bioformats_package.jar, see .ci/run) not installed")
def test_bioformats_shows_label_and_macro_before_and_not_after(tmp_path):
    """Bio-Formats walks every segment (not only the directories) and shows the nested Label and
    SlidePreview CZIs as "label image" and "macro image" series."""
    import subprocess
    from paw import formats
    path = str(tmp_path / "scan.czi")
    planted = synth.write(path)

    def info():
        return subprocess.run(["java", "-cp", BIOFORMATS, "loci.formats.tools.ImageInfo", "-nopix",
                               "-omexml", "-no-upgrade", path], capture_output=True, text=True,
                              timeout=300).stdout
    before = info()
    assert 'Name="label image"' in before and 'Name="macro image"' in before and planted["user"] in before
    options = type("Options", (), {"keep_macro": False, "full_scan": False})()
    handler = formats.identify(path)
    plan = handler.plan(path, options).plan
    plan.apply(path)
    assert handler.check(path, plan, options) == []
    after = info()
    assert "Series count = 1" in after and "label image" not in after and "macro image" not in after
    assert not [v for v in planted.values() if v in after]
    assert "Plan-Apochromat 20x/0.8" in after


def test_mutated_czi_is_refused_or_clean(tmp_path):
    """Random overwrites, truncations and insertions of a synthetic slide scan: each ends
    refused with a one-line reason, or verified with no planted value outside pixel data."""
    import random

    from paw import formats
    from paw.errors import SlideRefused
    from paw.verify import verify
    options = type("Options", (), {"keep_macro": False, "full_scan": False})()
    original = synth.build()
    planted = [v for v in synth.PLANTED.values() if len(v) >= 6]
    rng = random.Random(19)
    outcomes = {"refused": 0, "clean": 0}
    for trial in range(150):
        data = bytearray(original)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            kind = rng.random()
            if kind < 0.6:
                data[at:at + 4] = rng.randbytes(4)
            elif kind < 0.8:
                del data[at:]
            else:
                data[at:at] = rng.choice(planted).encode()
        path = str(tmp_path / f"m{trial}.czi")
        open(path, "wb").write(data)
        try:
            handler = formats.identify(path)
            plan = handler.plan(path, options).plan
            plan.apply(path)
            verify(path, handler, plan, options)
        except SlideRefused as exc:
            assert "\n" not in str(exc) and not any(v in str(exc) for v in planted)
            outcomes["refused"] += 1
            continue
        result = bytearray(open(path, "rb").read())
        for offset, length in plan.kept_data:
            result[offset:offset + length] = bytes(length)
        assert not [v for v in planted if v.encode() in result or v.encode("utf-16-le") in result], trial
        outcomes["clean"] += 1
    assert outcomes["refused"] and outcomes["clean"], outcomes


def _spare_bytes(data):
    struct.pack_into("<5s", data, 544 + 32 + 128 + 23, b"SMITH")   # directory entry 0, after the pyramid type
    struct.pack_into("<8s", data, 40, b"J.SMITH!")                  # the file header's reserved int32s


def test_text_in_spare_and_reserved_fields_is_cleared(lab, tmp_path):
    shutil.move(_mutated(tmp_path, _spare_bytes), os.path.join(lab.inbox, "spare.czi"))
    assert lab.run() == 0, lab.rows()[0]["error"]
    output = only_output(lab)
    assert b"SMITH" not in open(output, "rb").read() and pixels(output)
