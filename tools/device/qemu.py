"""Run firmware on an emulated board (QEMU: the MPS2/MPS3 FPGA images, the Netduino Plus 2's
STM32F405, the micro:bit's nRF51; MACHINES) with its first UART as a serial port.

The emulator is started the way a real board is used: the firmware image goes in with
``-kernel``, and UART0 comes out as a pseudo-terminal (``-serial pty``; QEMU prints
``char device redirected to /dev/pts/N``) or as a TCP server (``-serial tcp:...``, opened
with pyserial's ``socket://`` URL). Both are ordinary pyserial ports, so the host code
cannot tell them from a USB serial adapter.

``-icount shift=0`` makes time deterministic: one instruction takes 1 ns of virtual time,
so the firmware's tick counter (BOARD_TICK_HZ, firmware/board/board_cfg.h: 25 MHz on the
MPS2 images) counts exactly 1e9 / BOARD_TICK_HZ instructions per tick (40 on the MPS2).
``-semihosting`` lets the firmware end QEMU with an exit status (SHUTDOWN, a fault).

An :class:`Emulator` is a context manager; every process it starts is stopped on exit,
also when the caller is interrupted. ``bnnkws flash`` keeps one running in the
background and records it in ``build/<target>/emulator.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bnnkws.generator.base.errors import DeviceError

MACHINES = {
    "mps2-an386": "Cortex-M4F",
    "mps2-an385": "Cortex-M3",
    "mps2-an500": "Cortex-M7",
    "mps2-an505": "Cortex-M33",
    "mps3-an547": "Cortex-M55",
    "netduinoplus2": "STM32F405 (Cortex-M4F)",
    "microbit": "nRF51822 (Cortex-M0)",
}
PTY_RE = re.compile(r"char device redirected to (/dev/pts/\d+)")


def qemu_binary() -> str:
    found = shutil.which("qemu-system-arm")
    if not found:
        raise DeviceError(
            "qemu-system-arm not found: install Debian's qemu-system-arm (tools/bootstrap.sh does)"
        )
    return found


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Emulator:
    """One QEMU process running `elf` on `machine`; :attr:`port` is its UART0."""

    def __init__(
        self,
        elf: str | os.PathLike,
        machine: str = "mps2-an386",
        serial: str = "pty",
        icount: bool = True,
        detach: bool = False,
    ) -> None:
        if machine not in MACHINES:
            raise DeviceError(f"machine {machine!r}: expected one of {', '.join(MACHINES)}")
        if serial not in ("pty", "tcp"):
            raise DeviceError(f"serial {serial!r}: expected pty or tcp")
        self.elf = Path(elf)
        if not self.elf.is_file():
            raise DeviceError(
                f"{self.elf}: no firmware image (build it: bnnkws build --target {machine} --model ...)"
            )
        self.machine = machine
        self.serial = serial
        self.icount = icount
        self.detach = detach
        self.port = ""
        self.proc: subprocess.Popen | None = None
        self._log_path: Path | None = None

    def command(self, serial_arg: str) -> list[str]:
        cmd = [
            qemu_binary(),
            "-M",
            self.machine,
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            serial_arg,
            "-semihosting",
            "-kernel",
            str(self.elf),
        ]
        if self.icount:
            cmd[1:1] = ["-icount", "shift=0"]
        return cmd

    def start(self, timeout: float = 10.0) -> str:
        """Start QEMU; returns the port (a /dev/pts path or a socket:// URL)."""
        fd, log = tempfile.mkstemp(prefix="bnnkws-qemu-", suffix=".log")
        self._log_path = Path(log)
        tcp_port = _free_tcp_port() if self.serial == "tcp" else 0
        serial_arg = (
            "pty" if self.serial == "pty" else f"tcp:127.0.0.1:{tcp_port},server=on,wait=off"
        )
        try:
            self.proc = subprocess.Popen(
                self.command(serial_arg),
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=fd,
                start_new_session=True,  # Ctrl-C in a terminal goes to us, we stop QEMU
            )
        finally:
            os.close(fd)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if "unsupported machine type" in self.log_text():
                    raise DeviceError(
                        f"this qemu-system-arm has no machine {self.machine!r} "
                        f"({' '.join(self.log_text().split())[:200]}): install QEMU 7.0 or "
                        "newer (Debian 12's qemu-system-arm 7.2 models every target)"
                    )
                raise DeviceError(
                    f"QEMU exited at start (status {self.proc.returncode}): {self.log_tail()}"
                )
            if self.serial == "pty":
                m = PTY_RE.search(self.log_text())
                if m:
                    self.port = m.group(1)
                    return self.port
            elif _listening(tcp_port):
                self.port = f"socket://127.0.0.1:{tcp_port}"
                return self.port
            time.sleep(0.02)
        self.stop()
        raise DeviceError(f"QEMU gave no serial port within {timeout:.0f} s: {self.log_tail()}")

    def log_text(self) -> str:
        if self._log_path is None or not self._log_path.exists():
            return ""
        return self._log_path.read_text(errors="replace")

    def log_tail(self, n: int = 400) -> str:
        text = self.log_text().strip()
        return text[-n:] if text else "(no output)"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout: float) -> int | None:
        """Exit status after at most `timeout` seconds, None while still running."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> int | None:
        """Stop QEMU (SIGTERM, then SIGKILL); returns its exit status."""
        status = None
        if self.proc is not None:
            status = stop_pid(self.proc.pid, self.proc)
            self.proc = None
        if self._log_path is not None and not self.detach:
            self._log_path.unlink(missing_ok=True)
        return status

    def __enter__(self) -> Emulator:
        if not self.port:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _listening(port: int) -> bool:
    """True when something accepts on 127.0.0.1:port (QEMU re-accepts after we close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        try:
            s.connect(("127.0.0.1", port))
        except OSError:
            return False
    return True


def stop_pid(pid: int, proc: subprocess.Popen | None = None, grace: float = 3.0) -> int | None:
    """Terminate the process `pid` (ours), killing it after `grace` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if proc is not None:
        try:
            return proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            return proc.wait(grace)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.05)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (exited, not yet reaped by its parent) is not running
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


# -- the background emulator that `bnnkws flash` leaves running --------------------------
@dataclass(frozen=True)
class Running:
    """A detached emulator recorded in build/<target>/emulator.json."""

    pid: int
    port: str
    machine: str
    elf: str
    log: str
    started: float


def state_file(build_dir: Path, machine: str) -> Path:
    return build_dir / machine / "emulator.json"


def record(build_dir: Path, emu: Emulator) -> Running:
    assert emu.proc is not None and emu._log_path is not None
    run = Running(
        emu.proc.pid, emu.port, emu.machine, str(emu.elf.resolve()), str(emu._log_path), time.time()
    )
    path = state_file(build_dir, emu.machine)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(run.__dict__, indent=1))
    return run


def running(build_dir: Path, machine: str) -> Running | None:
    """The recorded background emulator, or None (a stale record is removed)."""
    path = state_file(build_dir, machine)
    if not path.exists():
        return None
    try:
        run = Running(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        path.unlink(missing_ok=True)
        return None
    if not pid_alive(run.pid) or not _is_qemu(run.pid):
        path.unlink(missing_ok=True)
        return None
    return run


def _is_qemu(pid: int) -> bool:
    try:
        return "qemu-system-arm" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(
            errors="replace"
        )
    except OSError:
        return False


def stop_running(build_dir: Path, machine: str) -> Running | None:
    run = running(build_dir, machine)
    if run is not None:
        stop_pid(run.pid)
        Path(run.log).unlink(missing_ok=True)
    state_file(build_dir, machine).unlink(missing_ok=True)
    return run
