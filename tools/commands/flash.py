"""`bnnkws flash`: put firmware on a board and leave it running.

Emulated (default): QEMU runs the image on the chosen MPS2 board in the background, with
UART0 as a serial port (a /dev/pts/N pty, or a socket:// URL with --serial tcp), and the
command prints the port after a handshake proved the firmware answers. `bnnkws stream
--port emulated` (or --port with the printed path) talks to it; `bnnkws flash --stop`
ends it.

Real board (--probe): the standard debug-probe route. pyOCD (`pyocd load`) for CMSIS-DAP,
ST-LINK and J-Link probes, or OpenOCD (`program ... verify reset exit`) with a board
config file. The board then talks over its USB serial port (--port /dev/ttyACM0 in
stream). See docs/FIRMWARE.md.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import time
from pathlib import Path

from bnnkws.generator.base.errors import DeviceError
from bnnkws.tools.device import qemu
from bnnkws.tools.device.firmware import (
    BOARDS,
    DEFAULT_BOARD,
    build_for_model,
    default_build_root,
    load,
)
from bnnkws.tools.device.serial_link import open_link


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "flash",
        help="start firmware on the emulated board (QEMU) or flash a real one through a probe",
        description="Start the firmware on an emulated MPS2 board in the background and print "
        "its serial port, or flash a real board with pyOCD/OpenOCD (--probe).",
    )
    p.add_argument(
        "--target", default=DEFAULT_BOARD, choices=sorted(BOARDS), help="board (default mps2-an386)"
    )
    p.add_argument(
        "--model", type=Path, default=None, help="build firmware for this blob/checkpoint first"
    )
    p.add_argument(
        "--elf",
        type=Path,
        default=None,
        help="firmware image (default: the last build for --target)",
    )
    p.add_argument(
        "--serial",
        choices=("pty", "tcp"),
        default="pty",
        help="emulated UART as a pty (default) or a TCP socket:// URL",
    )
    p.add_argument(
        "--foreground", action="store_true", help="stay attached until Ctrl-C, then stop the board"
    )
    p.add_argument("--stop", action="store_true", help="stop the emulated board started before")
    p.add_argument(
        "--probe",
        choices=("pyocd", "openocd"),
        default=None,
        help="flash a real board through a debug probe instead of emulating",
    )
    p.add_argument(
        "--probe-target",
        default="cortex_m",
        help="pyOCD target name (default cortex_m; e.g. stm32f429zi)",
    )
    p.add_argument(
        "--openocd-config",
        type=Path,
        default=None,
        help="OpenOCD board config file (--probe openocd)",
    )
    p.set_defaults(func=_flash)


def _image(args: argparse.Namespace) -> Path:
    if args.model is not None:
        fw, loaded = build_for_model(args.model, args.target)
        print(f"{args.model}: model {loaded.hash[:16]} -> {fw.elf}")
        print(fw.size_line())
        return fw.elf
    if args.elf is not None:
        return args.elf
    return load(args.target).elf


def flash_probe(args: argparse.Namespace, elf: Path) -> None:
    """Program a real board through pyOCD or OpenOCD."""
    if args.probe == "pyocd":
        tool = shutil.which("pyocd")
        if not tool:
            raise DeviceError(
                "--probe pyocd: pyocd not found (pip install pyocd; see docs/FIRMWARE.md)"
            )
        cmd = [tool, "load", "--target", args.probe_target, str(elf)]
    else:
        tool = shutil.which("openocd")
        if not tool:
            raise DeviceError(
                "--probe openocd: openocd not found (apt-get install openocd; see docs/FIRMWARE.md)"
            )
        if args.openocd_config is None:
            raise DeviceError("--probe openocd needs --openocd-config BOARD.cfg")
        cmd = [tool, "-f", str(args.openocd_config), "-c", f"program {elf} verify reset exit"]
    print("$ " + " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise DeviceError(f"{args.probe} failed (exit {proc.returncode}): {last[0]}")
    print(
        f"flashed {elf} with {args.probe}; stream with: bnnkws stream --port /dev/ttyACM0 --wav FILE"
    )


def _flash(args: argparse.Namespace) -> int:
    root = default_build_root()
    if args.stop:
        run = qemu.stop_running(root, args.target)
        print(
            f"{args.target}: stopped emulator pid {run.pid}"
            if run
            else f"{args.target}: no emulator running"
        )
        return 0
    elf = _image(args)
    if args.probe:
        flash_probe(args, elf)
        return 0
    old = qemu.stop_running(root, args.target)
    if old is not None:
        print(f"{args.target}: stopped the previous emulator (pid {old.pid})")
    emu = qemu.Emulator(elf, machine=args.target, serial=args.serial, detach=not args.foreground)
    port = emu.start()
    try:
        with open_link(port) as link:
            info = link.info
    except BaseException:
        emu.stop()
        raise
    print(f"{args.target} ({qemu.MACHINES[args.target]}, QEMU pid {emu.proc.pid}) runs {elf}")
    print(f"  {info.summary()}")
    print(f"  serial port: {port}")
    if not args.foreground:
        qemu.record(root, emu)
        print(
            f"  stream with: bnnkws stream --port {port} --wav FILE   (or --port emulated); "
            f"stop with: bnnkws flash --stop --target {args.target}"
        )
        return 0
    print("  running in the foreground; Ctrl-C stops it")
    try:
        while emu.alive():
            time.sleep(0.5)
        status = emu.wait(1)
        raise DeviceError(
            f"the emulated board stopped (QEMU exit status {status}): {emu.log_tail()}"
        )
    finally:
        emu.stop()
