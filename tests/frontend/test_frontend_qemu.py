"""firmware/frontend.c compiled for the Cortex-M4 (its DSP path: 16-bit packed FFT with
SMLAD/SHADD16) and the Cortex-M3 (portable path), run on QEMU, equal to the numpy
specification on thousands of frames: noise at every level, full-scale squares and sign
patterns, constants, near silence; plus twiddle tables off the unit circle, which must
take the 32-bit reference path."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bnnkws.generator import frontend as fe

pytestmark = pytest.mark.qemu

ROOT = Path(__file__).resolve().parents[2]
MAIN = Path(__file__).with_name("fe_qemu_main.c")
CORES = {
    "mps2-an386": ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"],
    "mps2-an385": ["-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft"],
}
LINKER = """
MEMORY { FLASH (rx) : ORIGIN = 0, LENGTH = 256K  RAM (rwx) : ORIGIN = 0x20000000, LENGTH = 64K }
ENTRY(Reset_Handler)
SECTIONS {
  .text : { KEEP(*(.vectors)) *(.text .text.* .rodata .rodata.*) . = ALIGN(4); } > FLASH
  _sidata = LOADADDR(.data);
  .data : { _sdata = .; *(.data .data.*) . = ALIGN(4); _edata = .; } > RAM AT > FLASH
  .bss (NOLOAD) : { _sbss = .; *(.bss .bss.* COMMON) . = ALIGN(4); _ebss = .; } > RAM
  _estack = ORIGIN(RAM) + LENGTH(RAM);
}
"""


def mix(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.uint32)
    x ^= x >> np.uint32(16)
    x *= np.uint32(0x7FEB352D)
    x ^= x >> np.uint32(15)
    x *= np.uint32(0x846CA68B)
    x ^= x >> np.uint32(16)
    return x


def frame_signal(f: int, n: int) -> np.ndarray:
    """Frame f of fe_qemu_main.c's make_frame."""
    s = int(mix(np.array([f ^ 0xA5A5A5A5]))[0])
    i = np.arange(n, dtype=np.uint32)
    h = mix((np.uint32(f) << np.uint32(16)) + i)
    low = (h & np.uint32(0xFFFF)).astype(np.uint16).astype(np.int16).astype(np.int64)
    kind = f % 7
    if kind == 0:
        v = low
    elif kind == 1:
        v = low >> (s % 15)
    elif kind == 2:
        v = np.where(((i.astype(np.int64) * (1 + s % 1024)) >> 8) & 1, 32767, -32768)
    elif kind == 3:
        v = np.where(h & np.uint32(1), 32767, -32768)
    elif kind == 4:
        v = np.full(n, (s % 6) * 13107 - 32768)
    elif kind == 5:
        v = (h % np.uint32(7)).astype(np.int64) - 3
    else:
        sq = np.where(((i.astype(np.int64) * (1 + s % 512)) >> 7) & 1, 32767, -32767)
        v = np.where(h % np.uint32(10) == 0, 0, sq)
    return v.astype(np.int16)


def off_circle(p: fe.FrontendParams) -> fe.FrontendParams:
    """Twiddles of magnitude up to sqrt(2) * 32767 (w_0 and w_{n/4} kept): products of
    large values would leave int16, the spec's int32 products do not."""
    c = p.cos_q15.copy()
    s = p.sin_q15.copy()
    q = p.frame_len // 4
    c[1:q] = 32767
    s[1:q] = 32767
    return dataclasses.replace(p, cos_q15=c, sin_q15=s)


def c_array(ctype: str, name: str, values) -> str:
    return f"static const {ctype} {name}[] = {{{', '.join(str(int(v)) for v in values)}}};\n"


def params_c(sets: list[tuple[fe.FrontendParams, int]]) -> str:
    out = ['#include "frontend.h"\n']
    entries = []
    for k, (p, _) in enumerate(sets):
        out += [
            c_array("uint16_t", f"win{k}", p.window),
            c_array("int16_t", f"cos{k}", p.cos_q15),
            c_array("int16_t", f"sin{k}", p.sin_q15),
            c_array("uint16_t", f"start{k}", p.mel_start),
            c_array("uint16_t", f"len{k}", p.mel_len),
            c_array("uint16_t", f"wt{k}", p.mel_weights),
        ]
        entries.append(
            f"{{{p.sample_rate % 65536}, {p.frame_len}, {p.hop}, {p.n_mels}, {p.log_frac_bits}, "
            f"{p.out_shift}, {p.out_offset}, win{k}, cos{k}, sin{k}, start{k}, len{k}, wt{k}}}"
        )
    out.append(f"const bk_fe_params_t params[] = {{{', '.join(entries)}}};\n")
    out.append(f"const unsigned n_params = {len(sets)};\n")
    out.append(f"const unsigned n_frames_of[] = {{{', '.join(str(n) for _, n in sets)}}};\n")
    return "".join(out)


def run_on_qemu(
    tmp: Path, machine: str, max_frame: int, opt: str, sets: list[tuple[fe.FrontendParams, int]]
) -> list[str]:
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} not installed: run tools/bootstrap.sh setup")
    (tmp / "params.c").write_text(params_c(sets))
    (tmp / "link.ld").write_text(LINKER)
    elf = tmp / f"fe-{machine}.elf"
    cmd = [
        "arm-none-eabi-gcc", *CORES[machine], *opt.split(), "-std=c11", "-Wall", "-Wextra", "-Werror",
        "-ffunction-sections", "-fdata-sections", "-nostdlib", "-Wl,--gc-sections",
        f"-I{ROOT / 'firmware'}", f"-DBK_FE_MAX_FRAME={max_frame}u", f"-T{tmp / 'link.ld'}",
        str(MAIN), str(ROOT / "firmware" / "frontend.c"), str(ROOT / "firmware" / "board" / "libc_min.c"),
        str(tmp / "params.c"), "-lgcc", "-o", str(elf),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    run = subprocess.run(
        ["qemu-system-arm", "-M", machine, "-display", "none", "-monitor", "none", "-serial", "none",
         "-chardev", "stdio,id=out", "-semihosting-config", "enable=on,target=native,chardev=out",
         "-kernel", str(elf)],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout.splitlines()


# the board builds' work area (512 samples), the C library's default (1024) and one in
# between: the M4 path places its twiddle table by it; -O0 with a frame pointer leaves
# its inline asm the fewest registers
@pytest.mark.parametrize(
    ("machine", "max_frame", "opt"),
    [
        ("mps2-an386", 512, "-O2"),
        ("mps2-an386", 1024, "-O2"),
        ("mps2-an386", 640, "-O0 -fno-omit-frame-pointer"),
        ("mps2-an385", 512, "-O2"),
    ],
)
def test_firmware_frontend_equals_numpy(machine, max_frame, opt, tmp_path):
    p = fe.default_params()
    small = fe.make_params(fe.FrontendConfig(frame_len=64, hop=32, n_mels=12, out_offset=1100))
    sets = [(p, 1400), (off_circle(p), 140), (small, 140)]
    lines = run_on_qemu(tmp_path, machine, max_frame, opt, sets)
    assert len(lines) == sum(n + 1 for _, n in sets)
    # the running count of frames computed by the 32-bit reference path, after each set:
    # none with make_params' tables, all with the others; the M4's fast path is built for
    # 512-sample frames only (flash), the portable one for every size
    fallbacks = [int(line.split()[1]) for line in lines if line.startswith("fallbacks")]
    small_ref = sets[2][1] if machine == "mps2-an386" else 0
    assert fallbacks == [0, sets[1][1], sets[1][1] + small_ref]
    lines = [line for line in lines if not line.startswith("fallbacks")]
    pos = 0
    for params, count in sets:
        frames = np.stack([frame_signal(f, params.frame_len) for f in range(count)])
        want = fe.frame_features(frames, params)
        got = np.array(
            [np.frombuffer(bytes.fromhex(line), dtype=np.int8) for line in lines[pos : pos + count]]
        )
        pos += count
        bad = np.nonzero(np.any(got != want, axis=1))[0]
        assert bad.size == 0, f"{machine}, frame_len {params.frame_len}: frames {bad[:10]} differ"
