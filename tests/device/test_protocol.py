"""Serial frame codec: format, C == Python (encoder and parser, differential fuzzing),
resynchronisation after damaged frames, and a sanitizer-built random-frame fuzzer."""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from host_c import dlopen_host
from hypothesis import given, settings
from hypothesis import strategies as st

from bnnkws.tools.device import protocol as P
from bnnkws.tools.device.detector import DetectorConfig

ROOT = Path(__file__).resolve().parents[2]

CDEF = """
typedef struct { uint8_t kind; uint8_t type; uint8_t seq; uint8_t header_ok; uint16_t len;
                 const uint8_t *payload; } bk_proto_event_t;
typedef struct { uint32_t frames, bad_header, bad_crc, oversize, truncated, noise; } bk_proto_counts_t;
typedef struct { uint16_t fill; uint16_t need; uint16_t pend; uint16_t pend_end; uint8_t holding;
                 bk_proto_counts_t counts; uint8_t buf[524]; } bk_proto_parser_t;
uint32_t bk_crc32(uint32_t crc, const void *data, size_t n);
void bk_proto_parser_init(bk_proto_parser_t *p);
size_t bk_proto_feed(bk_proto_parser_t *p, const uint8_t *data, size_t n, bk_proto_event_t *ev);
int bk_proto_timeout(bk_proto_parser_t *p, bk_proto_event_t *ev);
int bk_proto_busy(const bk_proto_parser_t *p);
size_t bk_proto_wanted(const bk_proto_parser_t *p);
void bk_proto_header(uint8_t *hdr, uint8_t type, uint8_t seq, uint16_t len);
size_t bk_proto_encode(uint8_t *out, size_t cap, uint8_t type, uint8_t seq,
                       const uint8_t *payload, size_t len);
"""


@pytest.fixture(scope="module")
def clib():
    return dlopen_host(CDEF)


class CParser:
    """The C parser driven like the firmware drives it, collecting Python Events."""

    def __init__(self, clib) -> None:
        self.ffi, self.lib = clib
        self.p = self.ffi.new("bk_proto_parser_t *")
        self.lib.bk_proto_parser_init(self.p)
        self.ev = self.ffi.new("bk_proto_event_t *")

    def _event(self) -> P.Event:
        e = self.ev
        payload = bytes(self.ffi.buffer(e.payload, e.len)) if e.kind == P.EventKind.FRAME else None
        return P.Event(P.EventKind(e.kind), e.type, e.seq, bool(e.header_ok), e.len, payload)

    def feed(self, data: bytes) -> list[P.Event]:
        out = []
        buf = self.ffi.from_buffer(data)
        pos = 0
        while True:
            used = self.lib.bk_proto_feed(self.p, buf + pos, len(data) - pos, self.ev)
            pos += used
            if self.ev.kind == 0:
                assert pos == len(data)
                return out
            out.append(self._event())

    def timeout(self) -> list[P.Event]:
        if not self.lib.bk_proto_timeout(self.p, self.ev):
            return []
        return [self._event(), *self.feed(b"")]

    def counts(self) -> P.Counts:
        c = self.p.counts
        return P.Counts(c.frames, c.bad_header, c.bad_crc, c.oversize, c.truncated, c.noise)


# -- format -------------------------------------------------------------------------------
def test_frame_layout_is_the_documented_one():
    frame = P.encode(P.MsgType.AUDIO, 7, b"\x01\x02\x03")
    head = b"BK" + bytes([0x10, 7, 3, 0])
    assert frame[:6] == head
    assert struct.unpack("<H", frame[6:8])[0] == zlib.crc32(head) & 0xFFFF
    assert frame[8:11] == b"\x01\x02\x03"
    assert struct.unpack("<I", frame[11:])[0] == zlib.crc32(frame[:11])
    assert len(frame) == P.HEADER + 3 + P.TRAILER


def test_crc32_is_zlibs(clib):
    _, lib = clib
    assert lib.bk_crc32(0, b"123456789", 9) == 0xCBF43926
    data = bytes(random.Random(1).randrange(256) for _ in range(1000))
    assert lib.bk_crc32(0, data, len(data)) == zlib.crc32(data)
    # continuing a CRC equals computing it at once
    assert lib.bk_crc32(lib.bk_crc32(0, data[:400], 400), data[400:], 600) == zlib.crc32(data)


@settings(max_examples=200, deadline=None)
@given(t=st.integers(0, 255), seq=st.integers(0, 255), payload=st.binary(max_size=P.MAX_PAYLOAD))
def test_c_and_python_encoders_agree_and_round_trip(clib, t, seq, payload):
    ffi, lib = clib
    out = ffi.new("uint8_t[]", P.MAX_FRAME)
    n = lib.bk_proto_encode(out, P.MAX_FRAME, t, seq, payload, len(payload))
    frame = P.encode(t, seq, payload)
    assert bytes(ffi.buffer(out, n)) == frame
    (ev,) = P.Parser().feed(frame)
    assert (ev.kind, ev.type, ev.seq, ev.payload) == (P.EventKind.FRAME, t, seq, payload)


def test_encoders_refuse_oversize(clib):
    ffi, lib = clib
    out = ffi.new("uint8_t[]", 2000)
    assert lib.bk_proto_encode(out, 2000, 1, 0, b"\0" * 513, 513) == 0
    assert lib.bk_proto_encode(out, 11, 1, 0, b"", 0) == 0  # 12 bytes needed
    with pytest.raises(ValueError, match="at most 512"):
        P.encode(1, 0, b"\0" * 513)


# -- resynchronisation ----------------------------------------------------------------------
def kinds(events):
    return [(e.kind.name, e.type, e.seq) for e in events]


@pytest.mark.parametrize("impl", ["python", "c"])
def test_damaged_frames_are_reported_and_the_next_frame_still_arrives(clib, impl):
    parser = P.Parser() if impl == "python" else CParser(clib)
    good1 = P.encode(P.MsgType.INFO_REQ, 1)
    flipped = bytearray(P.encode(P.MsgType.AUDIO, 2, bytes(range(100))))
    flipped[50] ^= 0x10
    truncated = P.encode(P.MsgType.AUDIO, 3, bytes(200))[:60]
    oversize = P.header(P.MsgType.AUDIO, 4, 4000)
    bad_header = bytearray(P.header(P.MsgType.AUDIO, 5, 10))
    bad_header[7] ^= 0xFF
    good2 = P.encode(P.MsgType.STATS_REQ, 6, b"xyz")
    stream = b"noise" + good1 + bytes(flipped) + truncated + oversize + bytes(bad_header) + good2
    events = parser.feed(stream) + parser.timeout()
    frames = [(e.type, e.seq, e.payload) for e in events if e.kind == P.EventKind.FRAME]
    assert frames == [(P.MsgType.INFO_REQ, 1, b""), (P.MsgType.STATS_REQ, 6, b"xyz")]
    names = [e.kind.name for e in events]
    assert "BAD_CRC" in names and "OVERSIZE" in names and "BAD_HEADER" in names
    over = next(e for e in events if e.kind == P.EventKind.OVERSIZE)
    assert (over.type, over.seq, over.length, over.header_ok) == (P.MsgType.AUDIO, 4, 4000, True)


@pytest.mark.parametrize("impl", ["python", "c"])
def test_a_frame_cut_short_is_reported_as_truncated_when_the_link_goes_quiet(clib, impl):
    parser = P.Parser() if impl == "python" else CParser(clib)
    frame = P.encode(P.MsgType.AUDIO, 9, bytes(64))
    assert parser.feed(frame[:30]) == []
    assert parser.busy() if impl == "python" else parser.lib.bk_proto_busy(parser.p)
    (ev,) = parser.timeout()
    assert (ev.kind, ev.type, ev.seq, ev.header_ok) == (
        P.EventKind.TRUNCATED,
        P.MsgType.AUDIO,
        9,
        True,
    )
    # the session goes on: a whole frame afterwards parses
    assert kinds(parser.feed(P.encode(P.MsgType.INFO_REQ, 10))) == [
        ("FRAME", P.MsgType.INFO_REQ, 10)
    ]


def test_wanted_counts_the_bytes_until_the_frame_can_be_complete():
    frame = P.encode(P.MsgType.AUDIO, 3, bytes(100))
    parser = P.Parser()
    assert parser.wanted() == 1
    parser.feed(frame[:1])
    assert parser.wanted() == 1  # the second magic byte
    parser.feed(frame[1:5])
    assert parser.wanted() == P.HEADER - 5
    parser.feed(frame[5:40])
    assert parser.wanted() == len(frame) - 40
    assert [e.kind for e in parser.feed(frame[40:])] == [P.EventKind.FRAME]
    assert parser.wanted() == 1


def test_a_frame_hidden_inside_a_truncated_one_is_found_by_the_rescan():
    """A cut frame's declared length swallows the next frame; the rescan recovers it."""
    cut = P.encode(P.MsgType.AUDIO, 1, bytes(300))[:20]
    whole = P.encode(P.MsgType.INFO_REQ, 2)
    parser = P.Parser()
    events = parser.feed(cut + whole)  # still waiting for 300 + 11 bytes
    assert events == []
    events = parser.timeout()
    assert [e.kind for e in events] == [P.EventKind.TRUNCATED, P.EventKind.FRAME]
    assert events[1].seq == 2


# -- differential fuzzing: C parser == Python parser ----------------------------------------
def random_stream(rng: random.Random, n_items: int) -> bytes:
    out = bytearray()
    for _ in range(n_items):
        r = rng.random()
        if r < 0.15:
            out += bytes(
                rng.choice([0x42, 0x4B, rng.randrange(256)]) for _ in range(rng.randrange(30))
            )
            continue
        length = rng.randrange(16) if rng.random() < 0.5 else rng.randrange(P.MAX_PAYLOAD + 1)
        frame = bytearray(P.encode(rng.randrange(256), rng.randrange(256), rng.randbytes(length)))
        if r < 0.55:
            pass
        elif r < 0.7:
            frame[rng.randrange(len(frame))] ^= 1 << rng.randrange(8)
        elif r < 0.85:
            frame = frame[: rng.randrange(len(frame))]
        elif r < 0.93:
            frame[:8] = P.header(frame[2], frame[3], rng.randrange(P.MAX_PAYLOAD + 1, 65536))
        else:
            frame[6 + rng.randrange(2)] ^= rng.randrange(1, 256)
        out += frame
    return bytes(out)


@pytest.mark.parametrize("seed", range(12))
def test_c_and_python_parsers_give_the_same_events(clib, seed):
    rng = random.Random(seed)
    stream = random_stream(rng, 120)
    c, py = CParser(clib), P.Parser()
    got_c, got_py = [], []
    pos = 0
    while pos < len(stream):
        k = rng.randrange(1, 600)
        got_c += c.feed(stream[pos : pos + k])
        got_py += py.feed(stream[pos : pos + k])
        pos += k
        assert c.lib.bk_proto_wanted(c.p) == py.wanted() >= 1
        if rng.random() < 0.1:
            got_c += c.timeout()
            got_py += py.timeout()
    while True:
        tc, tp = c.timeout(), py.timeout()
        got_c += tc
        got_py += tp
        if not tc and not tp:
            break
    assert got_c == got_py
    assert c.counts() == py.counts
    assert py.counts.frames > 0 and py.counts.bad_crc > 0


# -- long random-frame run under AddressSanitizer + UBSan -----------------------------------
@pytest.mark.slow
def test_sanitizer_fuzzer_finds_no_memory_errors_and_recovers_intact_frames(tmp_path):
    assert shutil.which("gcc"), "gcc not installed: run tools/bootstrap.sh setup"
    exe = tmp_path / "fuzz_protocol"
    fw = ROOT / "firmware"
    subprocess.run(
        [
            "gcc",
            "-O1",
            "-g",
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all",
            "-Wall",
            "-Wextra",
            "-Werror",
            f"-I{fw}",
            str(ROOT / "tests" / "fuzz_protocol.c"),
            str(fw / "protocol.c"),
            str(fw / "crc32.c"),
            "-o",
            str(exe),
        ],
        check=True,
        capture_output=True,
    )
    proc = subprocess.run([str(exe), "1500", "3"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "recovered" in proc.stdout


# -- payloads -------------------------------------------------------------------------------
def test_info_payload_round_trips():
    info = P.Info(
        1,
        2,
        512,
        16000,
        512,
        320,
        40,
        49,
        4,
        25_000_000,
        bytes(range(8)),
        (8, 8, 16),
        "0.1.0",
        "mps2-an386",
        ("_silence_", "_unknown_", "yes", "no"),
    )
    assert P.unpack_info(P.pack_info(info)) == info


def test_stats_result_detection_nak_round_trip():
    s = P.Stats(
        25_000_000,
        3,
        100,
        1000,
        900,
        2800,
        50,
        60,
        5000,
        5,
        12345,
        2,
        0,
        7000,
        4000,
        600,
        2048,
        P.Counts(1, 2, 3, 4, 5, 6),
        (10, 20, 30),
    )
    assert P.unpack_stats(P.pack_stats(s)) == s
    assert s.instructions(25) == 1000
    r = P.Result(48, (-5, 7, 2**31 - 1, -(2**31)))
    assert P.unpack_result(P.pack_result(r)) == r
    d = P.Detection(123, 2, 30000)
    assert P.unpack_detection(P.pack_detection(d)) == d
    n = P.Nak(5, P.Err.BAD_CRC, 6)
    assert P.unpack_nak(P.pack_nak(n)) == n
    c = P.Config(4, DetectorConfig((100, 0xFFFF, 32768), 3, 2, 50), P.SEND_RESULT)
    assert P.unpack_config(P.pack_config(c)) == c


def test_short_payloads_raise_device_errors_naming_the_message():
    from bnnkws.generator.base.errors import DeviceError

    with pytest.raises(DeviceError, match="DETECTION payload of 3 bytes"):
        P.unpack_detection(b"abc")
    with pytest.raises(DeviceError, match="INFO"):
        P.unpack_info(b"\0" * 10)
