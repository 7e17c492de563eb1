"""Serial frame codec, the Python twin of firmware/protocol.[ch] (docs/PROTOCOL.md).

Frame (little-endian): magic 'BK', type u8, seq u8, len u16, hcrc u16 (low 16 bits of
the CRC-32 of the six bytes before it), payload[len], crc u32 (CRC-32 of everything
before it). CRC-32 is zlib's. :class:`Parser` is the same byte-at-a-time machine as the C
parser, with the same resynchronisation rule (on any error drop the candidate's first
byte and rescan what is held) and the same events in the same order; the tests feed
both the same random streams and compare.

Names follow the C ones: ``BK_MSG_AUDIO`` is ``MsgType.AUDIO``, ``bk_proto_encode`` is
:func:`encode`, ``bk_proto_feed``/``bk_proto_timeout`` are :meth:`Parser.feed` and
:meth:`Parser.timeout`, payload layouts are the ``pack_*``/``unpack_*`` pairs.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field, fields
from enum import IntEnum

from bnnkws.generator.base.errors import DeviceError
from bnnkws.tools.device.detector import ConfigError, DetectorConfig

VERSION = 1
MAGIC = b"BK"
HEADER = 8
TRAILER = 4
MAX_PAYLOAD = 512
MAX_FRAME = HEADER + MAX_PAYLOAD + TRAILER
DUP_WINDOW = 16


class MsgType(IntEnum):
    """Message types; host -> device below 0x80, device -> host from 0x80."""

    HELLO = 0x01
    INFO_REQ = 0x02
    STATS_REQ = 0x03
    CONFIG = 0x04
    RESET = 0x05
    SHUTDOWN = 0x06
    AUDIO = 0x10
    FEATURES = 0x11
    ACK = 0x80
    HELLO_REPLY = 0x81
    INFO = 0x82
    STATS = 0x83
    RESULT = 0x84
    DETECTION = 0x85
    NAK = 0x86
    ERROR = 0x87
    BOOT = 0x88


class Err(IntEnum):
    """NAK reasons and ERROR codes (BK_ERR_*)."""

    BAD_HEADER = 1
    BAD_CRC = 2
    OVERSIZE = 3
    TRUNCATED = 4
    OUT_OF_ORDER = 5
    BAD_PAYLOAD = 6
    UNKNOWN_TYPE = 7
    BAD_CONFIG = 8


class EventKind(IntEnum):
    """Parser events (BK_PROTO_*)."""

    FRAME = 1
    BAD_HEADER = 2
    BAD_CRC = 3
    OVERSIZE = 4
    TRUNCATED = 5


def msg_name(t: int) -> str:
    try:
        return MsgType(t).name
    except ValueError:
        return f"type {t:#04x}"


def err_name(code: int) -> str:
    try:
        return Err(code).name
    except ValueError:
        return f"code {code}"


def _header_check(hdr6: bytes) -> int:
    return zlib.crc32(hdr6) & 0xFFFF


def header(msg_type: int, seq: int, length: int) -> bytes:
    """The 8 header bytes (bk_proto_header)."""
    h = MAGIC + struct.pack("<BBH", msg_type & 0xFF, seq & 0xFF, length)
    return h + struct.pack("<H", _header_check(h))


def encode(msg_type: int, seq: int, payload: bytes = b"") -> bytes:
    """A whole frame (bk_proto_encode). Raises ValueError for a payload over MAX_PAYLOAD."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes, at most {MAX_PAYLOAD}")
    body = header(msg_type, seq, len(payload)) + bytes(payload)
    return body + struct.pack("<I", zlib.crc32(body))


@dataclass(frozen=True)
class Event:
    """One parser event. type/seq/length come from the header when header_ok."""

    kind: EventKind
    type: int = 0
    seq: int = 0
    header_ok: bool = False
    length: int = 0
    payload: bytes | None = None

    def describe(self) -> str:
        if self.kind == EventKind.FRAME:
            return f"{msg_name(self.type)} seq {self.seq} ({self.length} bytes)"
        where = f" in {msg_name(self.type)} seq {self.seq}" if self.header_ok else ""
        return f"{self.kind.name.lower().replace('_', ' ')}{where}"


@dataclass
class Counts:
    frames: int = 0
    bad_header: int = 0
    bad_crc: int = 0
    oversize: int = 0
    truncated: int = 0
    noise: int = 0


@dataclass
class Parser:
    """Byte-stream -> events, bounded to MAX_FRAME bytes held (bk_proto_parser_t)."""

    counts: Counts = field(default_factory=Counts)
    _cand: bytearray = field(default_factory=bytearray)
    _queue: bytearray = field(default_factory=bytearray)
    _need: int = 0

    def busy(self) -> bool:
        """A partial frame is held (bk_proto_busy)."""
        return len(self._cand) > 0

    def wanted(self) -> int:
        """Bytes needed before anything can be reported (bk_proto_wanted)."""
        if self._queue:
            return 0
        n = len(self._cand)
        if n < 2:
            return 1
        return HEADER - n if n < HEADER else self._need - n

    def feed(self, data: bytes) -> list[Event]:
        """All events that `data` (after any bytes queued for rescanning) produces."""
        events: list[Event] = []
        self._drain(events)
        for b in data:
            ev = self._step(b)
            if ev is not None:
                events.append(ev)
                self._drain(events)
        return events

    def timeout(self) -> list[Event]:
        """Report a partial frame as TRUNCATED and rescan its bytes (bk_proto_timeout)."""
        if not self._cand:
            return []
        self.counts.truncated += 1
        events = [self._event(EventKind.TRUNCATED)]
        self._rescan()
        self._drain(events)
        return events

    # -- the machine ------------------------------------------------------------------
    def _drain(self, events: list[Event]) -> None:
        while self._queue:
            b = self._queue.pop(0)
            ev = self._step(b)
            if ev is not None:
                events.append(ev)

    def _event(self, kind: EventKind) -> Event:
        c = self._cand
        ok = len(c) >= HEADER and kind != EventKind.BAD_HEADER
        if not ok:
            return Event(kind)
        length = c[4] | (c[5] << 8)
        payload = bytes(c[HEADER : HEADER + length]) if kind == EventKind.FRAME else None
        return Event(kind, c[2], c[3], True, length, payload)

    def _rescan(self) -> None:
        self._queue[:0] = self._cand[1:]
        self._cand = bytearray()
        self._need = 0

    def _step(self, b: int) -> Event | None:
        c = self._cand
        if not c:
            if b == MAGIC[0]:
                c.append(b)
            else:
                self.counts.noise += 1
            return None
        if len(c) == 1:
            if b == MAGIC[1]:
                c.append(b)
            elif b == MAGIC[0]:
                self.counts.noise += 1
            else:
                self.counts.noise += 2
                c.clear()
            return None
        c.append(b)
        if len(c) == HEADER:
            kind = None
            if _header_check(bytes(c[:6])) != (c[6] | (c[7] << 8)):
                kind = EventKind.BAD_HEADER
                self.counts.bad_header += 1
            elif (c[4] | (c[5] << 8)) > MAX_PAYLOAD:
                kind = EventKind.OVERSIZE
                self.counts.oversize += 1
            if kind is not None:
                ev = self._event(kind)
                self._rescan()
                return ev
            self._need = HEADER + (c[4] | (c[5] << 8)) + TRAILER
            return None
        if self._need and len(c) == self._need:
            body = self._need - TRAILER
            if zlib.crc32(bytes(c[:body])) == struct.unpack_from("<I", c, body)[0]:
                self.counts.frames += 1
                ev = self._event(EventKind.FRAME)
                self._cand = bytearray()
                self._need = 0
                return ev
            self.counts.bad_crc += 1
            ev = self._event(EventKind.BAD_CRC)
            self._rescan()
            return ev
        return None


# --------------------------------------------------------------------------------------
# Payloads
# --------------------------------------------------------------------------------------
def _need(payload: bytes, n: int, what: str, exact: bool = True) -> None:
    if (len(payload) != n) if exact else (len(payload) < n):
        raise DeviceError(
            f"{what} payload of {len(payload)} bytes, expected {'' if exact else 'at least '}{n}"
        )


def pack_hello(nonce: int, version: int = VERSION) -> bytes:
    return struct.pack("<IB", nonce & 0xFFFFFFFF, version)


def unpack_hello(payload: bytes) -> tuple[int, int]:
    """(nonce, protocol version) of a HELLO or HELLO_REPLY."""
    _need(payload, 5, "HELLO")
    return struct.unpack("<IB", payload)


def unpack_ack(payload: bytes) -> int:
    _need(payload, 1, "ACK")
    return payload[0]


@dataclass(frozen=True)
class Nak:
    seq: int
    reason: int
    expected: int


def pack_nak(n: Nak) -> bytes:
    return bytes([n.seq, n.reason, n.expected])


def unpack_nak(payload: bytes) -> Nak:
    _need(payload, 3, "NAK")
    return Nak(payload[0], payload[1], payload[2])


@dataclass(frozen=True)
class ErrorMsg:
    code: int
    seq: int
    text: str


def unpack_error(payload: bytes) -> ErrorMsg:
    _need(payload, 2, "ERROR", exact=False)
    return ErrorMsg(payload[0], payload[1], payload[2:].decode("utf-8", "replace"))


@dataclass(frozen=True)
class Result:
    frame: int  # index of the last feature frame of the window (from 0 after HELLO/RESET)
    scores: tuple[int, ...]


def pack_result(r: Result) -> bytes:
    return struct.pack(f"<I{len(r.scores)}i", r.frame, *r.scores)


def unpack_result(payload: bytes) -> Result:
    _need(payload, 4, "RESULT", exact=False)
    if (len(payload) - 4) % 4:
        raise DeviceError(f"RESULT payload of {len(payload)} bytes is not 4 + 4 * n_classes")
    n = (len(payload) - 4) // 4
    frame, *scores = struct.unpack(f"<I{n}i", payload)
    return Result(frame, tuple(scores))


@dataclass(frozen=True)
class Detection:
    frame: int  # last feature frame of the window that fired
    label: int  # class index
    posterior: int  # smoothed posterior, Q15


def pack_detection(d: Detection) -> bytes:
    return struct.pack("<IBxH", d.frame, d.label, d.posterior)


def unpack_detection(payload: bytes) -> Detection:
    _need(payload, 8, "DETECTION")
    return Detection(*struct.unpack("<IBxH", payload))


@dataclass(frozen=True)
class Info:
    """What the firmware runs: INFO payload (docs/PROTOCOL.md has the byte layout)."""

    protocol: int
    rx_window: int  # requests the host may have outstanding
    max_payload: int
    sample_rate: int
    frame_len: int
    hop: int
    n_mels: int
    n_frames: int  # feature frames per inference window
    stride: int  # frames between inferences
    tick_hz: int
    model_hash: bytes  # 8 bytes
    acc_bits: tuple[int, ...]  # per compute layer
    firmware: str
    board: str
    labels: tuple[str, ...]

    def summary(self) -> str:
        bits = ",".join(str(b) for b in self.acc_bits)
        return (
            f"firmware {self.firmware} on {self.board}, protocol {self.protocol}, model "
            f"{self.model_hash.hex()}, acc bits {bits}, {len(self.labels)} labels "
            f"({' '.join(self.labels)}), window {self.n_frames} frames, stride {self.stride}"
        )


# INFO payload: these fields in order (struct _INFO_HEAD), u8 n_conv, u8 acc_bits[n_conv],
# u8 n_labels, NUL-terminated firmware, board, labels (firmware/app/link.c send_info).
_INFO_FIELDS = (
    "protocol",
    "rx_window",
    "max_payload",
    "sample_rate",
    "frame_len",
    "hop",
    "n_mels",
    "n_frames",
    "stride",
    "tick_hz",
    "model_hash",
)
_INFO_HEAD = struct.Struct("<BBHHHHBBHI8sB")


def pack_info(i: Info) -> bytes:
    head = _INFO_HEAD.pack(*(getattr(i, f) for f in _INFO_FIELDS), len(i.acc_bits))
    strings = b"".join(s.encode() + b"\0" for s in (i.firmware, i.board, *i.labels))
    return head + bytes(i.acc_bits) + bytes([len(i.labels)]) + strings


def unpack_info(payload: bytes) -> Info:
    _need(payload, _INFO_HEAD.size + 1, "INFO", exact=False)
    *head, n_layers = _INFO_HEAD.unpack_from(payload)
    off = _INFO_HEAD.size
    _need(payload, off + n_layers + 1, "INFO", exact=False)
    acc_bits = tuple(payload[off : off + n_layers])
    n_labels = payload[off + n_layers]
    strings = payload[off + n_layers + 1 :].split(b"\0")
    if len(strings) < 2 + n_labels + 1 or strings[2 + n_labels] != b"":
        raise DeviceError(f"INFO payload: expected {2 + n_labels} NUL-terminated strings")
    text = [s.decode("utf-8", "replace") for s in strings[: 2 + n_labels]]
    return Info(*head, acc_bits, text[0], text[1], tuple(text[2:]))


@dataclass(frozen=True)
class Stats:
    """Timer counts from the firmware (TIMER0 ticks at tick_hz; docs/PROTOCOL.md)."""

    tick_hz: int
    inferences: int
    hops: int  # front-end frames computed
    infer_ticks_last: int
    infer_ticks_min: int
    infer_ticks_total: int  # u32, wraps after 2^32 ticks (171 s at 25 MHz)
    frontend_ticks_last: int  # the hop that completed last
    frontend_ticks_max: int
    frontend_ticks_total: int
    detector_ticks_last: int
    rx_bytes: int
    rx_pauses: int  # times the receive ring filled and the UART was left unread
    rx_overruns: int
    uptime_ticks: int  # TIMER0 now (u32, wraps)
    idle_ticks: int  # asleep waiting for input since reset (u32, wraps)
    stack_used: int  # deepest stack use since reset, bytes
    stack_size: int  # bytes reserved for the stack
    parser: Counts
    layer_ticks: tuple[int, ...]  # last inference, per layer

    def instructions(self, ticks: int) -> int:
        """Instructions for `ticks` under QEMU -icount shift=0 (1 instruction = 1 ns)."""
        return ticks * 1_000_000_000 // self.tick_hz

    def busy_since(self, before: Stats) -> int:
        """Ticks the core was awake between two STATS (u32 wrap-around handled)."""
        up = (self.uptime_ticks - before.uptime_ticks) & 0xFFFFFFFF
        idle = (self.idle_ticks - before.idle_ticks) & 0xFFFFFFFF
        return up - idle


# STATS payload: the u32 fields of Stats in declaration order, the 6 parser counts (u32),
# u8 number of layers, u32 ticks per layer (firmware/app/link.c send_stats).
_STATS_U32 = [f.name for f in fields(Stats) if f.name not in ("parser", "layer_ticks")]
_COUNTS = [f.name for f in fields(Counts)]
_STATS_HEAD = struct.Struct("<" + "I" * (len(_STATS_U32) + len(_COUNTS)) + "B")


def pack_stats(s: Stats) -> bytes:
    values = [getattr(s, n) for n in _STATS_U32] + [getattr(s.parser, n) for n in _COUNTS]
    head = _STATS_HEAD.pack(*values, len(s.layer_ticks))
    return head + struct.pack(f"<{len(s.layer_ticks)}I", *s.layer_ticks)


def unpack_stats(payload: bytes) -> Stats:
    _need(payload, _STATS_HEAD.size, "STATS", exact=False)
    v = _STATS_HEAD.unpack_from(payload)
    n = v[-1]
    _need(payload, _STATS_HEAD.size + 4 * n, "STATS")
    layers = struct.unpack_from(f"<{n}I", payload, _STATS_HEAD.size)
    k = len(_STATS_U32)
    return Stats(*v[:k], parser=Counts(*v[k : k + len(_COUNTS)]), layer_ticks=layers)


SEND_RESULT = 0x01
SEND_DETECTION = 0x02
FULL_WINDOW = 0x04  # recompute every window whole (the reference of streaming inference)


@dataclass(frozen=True)
class Config:
    """CONFIG payload: inference stride (frames), what to send, the detector settings."""

    stride: int
    detector: DetectorConfig
    flags: int = SEND_RESULT | SEND_DETECTION


def pack_config(c: Config) -> bytes:
    d = c.detector
    d.check()
    if not 1 <= c.stride <= 0xFFFF:
        raise ConfigError(f"stride {c.stride} frames, expected 1..65535")
    return struct.pack(
        "<HBBHBB", c.stride, d.smooth, d.temp_shift, d.refractory, c.flags, d.n_classes
    ) + struct.pack(f"<{d.n_classes}H", *d.thr)


def unpack_config(payload: bytes) -> Config:
    _need(payload, 8, "CONFIG", exact=False)
    stride, smooth, temp_shift, refractory, flags, n = struct.unpack_from("<HBBHBB", payload)
    _need(payload, 8 + 2 * n, "CONFIG")
    thr = struct.unpack_from(f"<{n}H", payload, 8)
    return Config(stride, DetectorConfig(thr, smooth, temp_shift, refractory), flags)
