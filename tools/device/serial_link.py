"""Host side of the serial protocol (docs/PROTOCOL.md) over pyserial.

:class:`Link` opens a port (``/dev/ttyACM0``, ``/dev/pts/N`` of an emulator, or a
``socket://host:port`` URL), performs the handshake, asks for INFO and STATS, applies a
CONFIG, and streams AUDIO or FEATURES with go-back-N flow control inside the window the
firmware advertises. RESULT and DETECTION frames go to a callback as they arrive.

Nothing here waits without a deadline: every wait is bounded, lost frames are resent,
and a port that disappears (QEMU exited, board unplugged) or a device that stops
answering raises :class:`~bnnkws.generator.base.errors.DeviceError` with a one-line reason.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import serial

from bnnkws.generator.base.errors import DeviceError
from bnnkws.tools.device import protocol as P

Listener = Callable[[int, object], None]  # (message type, decoded payload)


@dataclass
class LinkCounts:
    """What the host saw: frames, resends, NAKs by reason, device frames lost (seq gaps)."""

    sent: int = 0
    resent: int = 0
    received: int = 0
    naks: dict[str, int] = field(default_factory=dict)
    device_seq_gaps: int = 0
    parse_errors: int = 0


class Link:
    """A session with the firmware on one serial port."""

    def __init__(
        self,
        port: str,
        baudrate: int = 115200,
        timeout: float = 5.0,
        retries: int = 4,
        max_window: int | None = None,
    ) -> None:
        """timeout: seconds without progress before a frame is resent; `retries` resends
        without progress end the session with DeviceError. max_window caps the frames in
        flight below the firmware's window (1: stop-and-wait, so nothing arrives while
        the device computes, which keeps timer measurements free of interrupts)."""
        self.port_name = port
        self.max_window = max_window
        self.timeout = timeout
        self.retries = retries
        self.parser = P.Parser()
        self.seq = 0
        self.info: P.Info | None = None
        self.counts = LinkCounts()
        self.listener: Listener | None = None
        self._inbox: list[P.Event] = []
        self._device_seq: int | None = None
        try:
            self.ser = serial.serial_for_url(
                port, baudrate=baudrate, timeout=0.02, write_timeout=timeout
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise DeviceError(f"{port}: cannot open serial port ({_reason(exc)})") from None

    # -- bytes -------------------------------------------------------------------------
    def close(self) -> None:
        try:
            self.ser.close()
        except (serial.SerialException, OSError):
            pass

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _gone(self, exc: BaseException) -> DeviceError:
        return DeviceError(
            f"{self.port_name}: serial port went away ({_reason(exc)}); the emulator exited or "
            "the board was unplugged"
        )

    def write(self, data: bytes) -> None:
        try:
            self.ser.write(data)
        except serial.SerialTimeoutException:
            raise DeviceError(
                f"{self.port_name}: write blocked for {self.timeout:.0f} s (device not reading)"
            ) from None
        except (serial.SerialException, OSError) as exc:
            raise self._gone(exc) from None

    def _read(self) -> bytes:
        try:
            return self.ser.read(max(1, self.ser.in_waiting))
        except (serial.SerialException, OSError, TypeError) as exc:
            # TypeError: pyserial's socket:// after the peer closed
            raise self._gone(exc) from None

    def poll(self, wait: float = 0.02) -> list[P.Event]:
        """Frames received within `wait` seconds (at least one read); listener called."""
        deadline = time.monotonic() + wait
        out: list[P.Event] = []
        while True:
            data = self._read()
            if data:
                for ev in self.parser.feed(data):
                    if ev.kind != P.EventKind.FRAME:
                        self.counts.parse_errors += 1
                        continue
                    self._note_seq(ev.seq)
                    self.counts.received += 1
                    self._dispatch(ev)
                    out.append(ev)
            if out or time.monotonic() >= deadline:
                return out

    def _note_seq(self, seq: int) -> None:
        if self._device_seq is not None and seq != (self._device_seq + 1) & 0xFF:
            self.counts.device_seq_gaps += 1
        self._device_seq = seq

    def _dispatch(self, ev: P.Event) -> None:
        if self.listener is None:
            return
        if ev.type == P.MsgType.RESULT:
            self.listener(ev.type, P.unpack_result(ev.payload))
        elif ev.type == P.MsgType.DETECTION:
            self.listener(ev.type, P.unpack_detection(ev.payload))

    # -- session -----------------------------------------------------------------------
    def handshake(self, tries: int = 6, wait: float = 1.5) -> None:
        """HELLO until the matching HELLO_REPLY; restarts numbering and the device stream.

        The first tries may go unanswered: an emulator notices a freshly opened pty only
        after a moment, and a boot banner may be half-received.
        """
        nonce = random.getrandbits(32)
        for _ in range(tries):
            self.parser = P.Parser()
            self._device_seq = None
            self.write(P.encode(P.MsgType.HELLO, 0, P.pack_hello(nonce)))
            deadline = time.monotonic() + wait
            replied = acked = False
            while time.monotonic() < deadline and not (replied and acked):
                for ev in self.poll(0.05):
                    if ev.type == P.MsgType.HELLO_REPLY:
                        got, version = P.unpack_hello(ev.payload)
                        if got != nonce:
                            continue
                        if version != P.VERSION:
                            raise DeviceError(
                                f"{self.port_name}: firmware speaks protocol {version}, host {P.VERSION}"
                            )
                        replied = True
                    elif ev.type == P.MsgType.ACK and replied and P.unpack_ack(ev.payload) == 0:
                        acked = True
            if replied:
                self.seq = 1
                return
        raise DeviceError(
            f"{self.port_name}: no answer to HELLO after {tries} tries ({tries * wait:.0f} s): "
            "is the firmware running on this port?"
        )

    def request(self, msg_type: int, payload: bytes = b"") -> list[P.Event]:
        """Send one request, wait for its ACK; returns the frames that came meanwhile."""
        got: list[P.Event] = []
        self.send_frames(iter([(msg_type, payload)]), collect=got)
        return got

    def get_info(self) -> P.Info:
        for ev in self.request(P.MsgType.INFO_REQ):
            if ev.type == P.MsgType.INFO:
                self.info = P.unpack_info(ev.payload)
                return self.info
        raise DeviceError(f"{self.port_name}: INFO_REQ acknowledged without an INFO reply")

    def get_stats(self) -> P.Stats:
        for ev in self.request(P.MsgType.STATS_REQ):
            if ev.type == P.MsgType.STATS:
                return P.unpack_stats(ev.payload)
        raise DeviceError(f"{self.port_name}: STATS_REQ acknowledged without a STATS reply")

    def configure(self, config: P.Config) -> None:
        self.request(P.MsgType.CONFIG, P.pack_config(config))

    def reset_stream(self) -> None:
        self.request(P.MsgType.RESET)

    def shutdown(self) -> None:
        """Ask the firmware to stop the board (semihosting exit on QEMU)."""
        try:
            self.request(P.MsgType.SHUTDOWN)
        except DeviceError:
            pass  # the ACK can be lost when the emulator exits at once

    # -- streaming ---------------------------------------------------------------------
    def stream_audio(
        self,
        samples: np.ndarray,
        chunk: int = 256,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """Send int16 samples as AUDIO frames of `chunk` samples with flow control."""
        x = np.ascontiguousarray(samples, dtype="<i2")
        if chunk < 1 or 2 * chunk > P.MAX_PAYLOAD:
            raise ValueError(f"chunk {chunk} samples, expected 1..{P.MAX_PAYLOAD // 2}")
        starts = range(0, x.size, chunk)

        def frames() -> Iterator[tuple[int, bytes]]:
            for s in starts:
                yield P.MsgType.AUDIO, x[s : s + chunk].tobytes()

        done = (lambda k: progress(min(k * chunk, x.size), x.size)) if progress else None
        self.send_frames(frames(), on_acked=done)

    def stream_audio_chunks(self, chunks: Iterable[np.ndarray], chunk: int = 256) -> int:
        """Send int16 chunks as they come (a live source); returns the samples sent."""
        sent = 0

        def frames() -> Iterator[tuple[int, bytes]]:
            nonlocal sent
            for c in chunks:
                x = np.ascontiguousarray(c, dtype="<i2")
                for s in range(0, x.size, chunk):
                    part = x[s : s + chunk]
                    sent += part.size
                    yield P.MsgType.AUDIO, part.tobytes()

        self.send_frames(frames())
        return sent

    def stream_features(
        self,
        feats: np.ndarray,
        rows_per_frame: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """Send int8 feature rows [T, n_mels] as FEATURES frames with flow control."""
        f = np.ascontiguousarray(feats, dtype=np.int8)
        per = rows_per_frame or max(1, P.MAX_PAYLOAD // f.shape[1])

        def frames() -> Iterator[tuple[int, bytes]]:
            for s in range(0, f.shape[0], per):
                yield P.MsgType.FEATURES, f[s : s + per].tobytes()

        done = (lambda k: progress(min(k * per, f.shape[0]), f.shape[0])) if progress else None
        self.send_frames(frames(), on_acked=done)

    def send_frames(
        self,
        frames: Iterator[tuple[int, bytes]],
        collect: list[P.Event] | None = None,
        on_acked: Callable[[int], None] | None = None,
    ) -> None:
        """Go-back-N: up to `window` frames unacknowledged; a NAK names the seq the device
        expects and sending restarts there; `retries` timeouts without progress fail.

        collect receives every frame that arrives; on_acked(n) after each ACK progress
        with the number of frames acknowledged so far.
        """
        window = max(1, self.info.rx_window if self.info else 1)
        if self.max_window:
            window = min(window, self.max_window)
        sent: list[bytes] = []  # encoded, index k has seq (seq0 + k) & 0xFF
        seq0 = self.seq
        base = nxt = 0  # first unacknowledged, next to send
        exhausted = False
        rewound_to: int | None = None
        last_progress = time.monotonic()
        stalls = 0
        while True:
            while nxt < base + window:
                if nxt == len(sent):
                    if exhausted:
                        break
                    item = next(frames, None)
                    if item is None:
                        exhausted = True
                        break
                    sent.append(P.encode(item[0], (seq0 + len(sent)) & 0xFF, item[1]))
                self.write(sent[nxt])
                self.counts.sent += 1
                nxt += 1
            if exhausted and base == len(sent):
                self.seq = (seq0 + len(sent)) & 0xFF
                return
            for ev in self.poll(0.05):
                if collect is not None:
                    collect.append(ev)
                if ev.type == P.MsgType.ACK:
                    k = _index_of(P.unpack_ack(ev.payload), seq0, base, nxt)
                    if k is not None and base <= k < nxt:
                        base = k + 1
                        rewound_to = None
                        last_progress = time.monotonic()
                        stalls = 0
                        if on_acked:
                            on_acked(base)
                elif ev.type == P.MsgType.NAK:
                    nak = P.unpack_nak(ev.payload)
                    name = P.err_name(nak.reason)
                    self.counts.naks[name] = self.counts.naks.get(name, 0) + 1
                    k = _index_of(nak.expected, seq0, base, nxt)
                    if k is not None and k != rewound_to:
                        base = max(base, k)  # the device holds everything before k
                        self.counts.resent += nxt - k
                        nxt = k
                        rewound_to = k
                    elif k is None and base == 0 and nak.reason == P.Err.OUT_OF_ORDER:
                        # host and device numbering diverged (e.g. frames written raw):
                        # renumber this batch from the seq the device expects
                        seq0 = nak.expected
                        sent = [_renumber(f, (seq0 + i) & 0xFF) for i, f in enumerate(sent)]
                        self.counts.resent += nxt
                        nxt = 0
                        rewound_to = None
                elif ev.type == P.MsgType.ERROR:
                    err = P.unpack_error(ev.payload)
                    k = _index_of(err.seq, seq0, base, nxt)
                    if k is not None and k < len(sent):
                        # the device consumed that seq (and handles those sent after it)
                        self.seq = (seq0 + nxt) & 0xFF
                        what = P.msg_name(sent[k][2])
                        raise DeviceError(
                            f"{self.port_name}: device refused {what} seq {err.seq}: "
                            f"{P.err_name(err.code)} ({err.text})"
                        )
            if time.monotonic() - last_progress > self.timeout:
                stalls += 1
                if stalls > self.retries:
                    what = P.msg_name(sent[base][2]) if base < len(sent) else "frame"
                    raise DeviceError(
                        f"{self.port_name}: no ACK for {what} seq {(seq0 + base) & 0xFF} after "
                        f"{self.retries} resends ({(self.retries + 1) * self.timeout:.0f} s): "
                        "device stopped answering"
                    )
                self.counts.resent += nxt - base
                nxt = base
                rewound_to = None
                last_progress = time.monotonic()


def _renumber(frame: bytes, seq: int) -> bytes:
    """The same frame with another sequence number."""
    payload = frame[P.HEADER : len(frame) - P.TRAILER]
    return P.encode(frame[2], seq, payload)


def _index_of(seq: int, seq0: int, base: int, nxt: int) -> int | None:
    """Index k in [base - 1, nxt] of the frame numbered seq, or None (stale or foreign).
    k == nxt is the next frame to send (a NAK's expected seq when all sent are done)."""
    for k in range(max(0, base - 1), nxt + 1):
        if (seq0 + k) & 0xFF == seq:
            return k
    return None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def open_link(port: str, handshake: bool = True, **kwargs) -> Link:
    """Open `port`, shake hands and read INFO; the port is closed again on failure.
    kwargs go to :class:`Link`."""
    if port.startswith("/dev/") and not os.path.exists(port):
        raise DeviceError(f"{port}: no such serial port")
    link = Link(port, **kwargs)
    try:
        if handshake:
            link.handshake()
            link.get_info()
    except BaseException:
        link.close()
        raise
    return link
