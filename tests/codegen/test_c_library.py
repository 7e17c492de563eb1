"""`bnnkws export CKPT --c-library DIR` (generator/codegen/c_library.py): the folder builds
outside the repository with plain make and host gcc, its example's scores and detections
on a WAV file equal the host library's (and numpy's) bit for bit, and arm-none-eabi-gcc
compiles it for a Cortex-M4 and a Cortex-M0.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from bnn_models import random_integer_model

from bnnkws.generator.base.errors import BuildError
from bnnkws.generator.base.paths import MODELS_DIR, project_root
from bnnkws.generator.codegen.c_library import library_sources, write_c_library
from bnnkws.generator.data.audio_io import write_wav
from bnnkws.generator.export import blob as blobmod
from bnnkws.tools import cli
from bnnkws.tools.bench.mcu import bench_audio
from bnnkws.tools.device.detector import NEVER, Detector, DetectorConfig
from bnnkws.tools.host.hostlib import CFrontend, CNet


def run(cmd: list[str], cwd: Path) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    missing = [t for t in ("make", "gcc") if not shutil.which(t)]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not installed (tools/bootstrap.sh installs the toolchain)"
        )
    out = tmp_path_factory.mktemp("c-library") / "kws"
    assert project_root().resolve() not in out.resolve().parents  # really out of tree
    assert cli.main(["export", str(MODELS_DIR / "default.pt"), "--c-library", str(out)]) == 0
    run(["make", "CC=gcc", "EXTRA_CFLAGS=-Werror", "-j2"], out)
    return out


def parse(text: str) -> tuple[list[tuple[int, list[int]]], list[tuple[int, int, str, int]]]:
    inferences, detections = [], []
    for line in text.splitlines():
        f = line.split()
        if f[0] == "inference":
            inferences.append((int(f[1]), [int(v) for v in f[2:]]))
        elif f[0] == "detection":
            detections.append((int(f[1]), int(f[2]), f[3], int(f[4])))
    return inferences, detections


@pytest.mark.parametrize(
    ("stride", "threshold", "chunk"), [(5, 0, 1000), (1, 13107, 333)], ids=["s5-t0", "s1-t0.4"]
)
def test_example_on_a_wav_file_equals_the_host_library(library, tmp_path, stride, threshold, chunk):
    blob = (library / "model" / "model.bkim").read_bytes()
    model = blobmod.from_bytes(blob, "library blob")
    audio = bench_audio(4.0, seed=3)
    wav = tmp_path / "clip.wav"
    write_wav(wav, audio)
    args = ["-a", "-s", str(stride), "-t", str(threshold), "-c", str(chunk)]
    out = run([str(library / "build" / "kws_example"), str(wav), *args], library)
    assert out.splitlines()[0].startswith(f"model {blobmod.model_hash(blob)}")
    inferences, detections = parse(out)

    feats = CFrontend(model.frontend).features(audio)  # the host library's front-end
    n = model.n_frames
    frames = list(range(n - 1, feats.shape[0], stride))
    assert [f for f, _ in inferences] == frames
    windows = np.stack([feats[f - n + 1 : f + 1] for f in frames])
    host, _ = CNet.build(model).scores(windows)
    got = np.array([s for _, s in inferences], dtype=np.int32)
    assert np.array_equal(got, host)
    assert np.array_equal(got, model.forward(windows))  # numpy reference

    cfg = DetectorConfig.of_model(model)  # the example starts from bk_model_detector
    thr = tuple(t if t == NEVER else threshold for t in cfg.thr)
    det = Detector(dataclasses.replace(cfg, thr=thr))
    want = [d for f, s in zip(frames, host.tolist(), strict=True) if (d := det.push(s, f))]
    assert want, "the thresholds are low enough for detections on this clip"
    assert detections == [(d.frame, d.label, model.labels[d.label], d.posterior) for d in want]


def test_arm_none_eabi_gcc_compiles_the_library_for_m4_and_m0(library):
    if not shutil.which("arm-none-eabi-gcc"):
        pytest.fail("arm-none-eabi-gcc not installed (tools/bootstrap.sh installs it)")
    for name, flags in (
        ("m4", "-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16"),
        ("m0", "-mcpu=cortex-m0 -mthumb"),
    ):
        run(
            [
                "make",
                "lib",
                "CC=arm-none-eabi-gcc",
                "AR=arm-none-eabi-ar",
                f"ARCH_FLAGS={flags}",
                f"BUILD=build-{name}",
                "CFLAGS=-O2 -Wall -Wextra -Werror",
                "-j2",
            ],
            library,
        )
        symbols = run(["arm-none-eabi-nm", f"build-{name}/libbnnkws_kws.a"], library)
        for sym in ("bk_kws_init", "bk_kws_push", "bk_model_run", "bk_model"):
            assert f" T {sym}\n" in symbols or f" R {sym}\n" in symbols, (name, sym)


def test_the_folder_is_self_contained(library):
    copied = sorted(p.name for p in (library / "src").iterdir())
    assert copied == sorted(p.name for p in library_sources())
    assert "protocol.c" not in copied and "kws_lib.h" in copied
    cert = (library / "model" / "kws_certificate.h").read_text()
    assert "#define BK_CERT_L0_ACC_BITS" in cert and "BK_CERT_ANY_OVERFLOW" in cert
    # nothing in it points back into the checkout
    root = str(project_root().resolve())
    for p in library.rglob("*"):
        if (
            p.is_file()
            and p.suffix in (".c", ".h", ".txt", ".md", ".json", "")
            and "build" not in p.parts
        ):
            assert root not in p.read_text(errors="replace"), p


def test_bad_output_folders_get_one_line(tmp_path, capsys):
    model = random_integer_model(1, arch="tiny", n_classes=3)
    afile = tmp_path / "a-file"
    afile.write_text("x")
    with pytest.raises(BuildError, match="not a folder"):
        write_c_library(model, afile)
    with pytest.raises(BuildError, match="firmware/"):
        write_c_library(model, project_root() / "firmware" / "lib")
    assert cli.main(["export", str(MODELS_DIR / "default.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--c-library" in err[0], err


API_CHECK = r"""
#include <stdio.h>
#include <string.h>

#include "kws_lib.h"
#include "model.h"

static uint32_t mem[BK_KWS_MEM_WORDS(BK_MODEL_N_FRAMES, BK_MODEL_N_MELS, BK_MODEL_STREAM_WORDS, BK_MODEL_STREAM_WORK_WORDS) + 1];
static int events;
static void on_event(const bk_kws_event_t *ev, void *user) {
    (void)ev;
    (*(int *)user)++;
}

int main(void) {
    bk_kws_t k;
    bk_kws_config_t cfg;
    const size_t need = bk_kws_mem_bytes(&bk_model);
    printf("need %zu have %zu\n", need, sizeof mem - 4);
    printf("small %d\n", bk_kws_init(&k, &bk_model, NULL, mem, need - 4, on_event, &events));
    printf("unaligned %d\n", bk_kws_init(&k, &bk_model, NULL, (char *)mem + 1, need, on_event, &events));
    printf("null %d\n", bk_kws_init(&k, &bk_model, NULL, NULL, need, on_event, &events));
    bk_kws_default_config(&bk_model, &cfg);
    cfg.stride = 0;
    printf("stride0 %d\n", bk_kws_init(&k, &bk_model, &cfg, mem, need, on_event, &events));
    bk_kws_default_config(&bk_model, &cfg);
    cfg.det.smooth = 9;
    printf("smooth9 %d\n", bk_kws_init(&k, &bk_model, &cfg, mem, need, on_event, &events));
    bk_kws_default_config(&bk_model, &cfg);
    cfg.flags = BK_KWS_EVERY_INFERENCE;
    printf("ok %d\n", bk_kws_init(&k, &bk_model, &cfg, mem, need, on_event, &events));
    static int16_t zeros[16000];
    bk_kws_push(&k, zeros, 16000); /* 1 s: window full at row 49, then every 5 rows */
    printf("events %d\n", events);
    bk_kws_reset(&k);
    bk_kws_push(&k, zeros, 16000);
    printf("events %d\n", events);
    return 0;
}
"""


def test_the_api_refuses_bad_memory_and_settings(library, tmp_path):
    src = tmp_path / "api_check.c"
    src.write_text(API_CHECK)
    exe = tmp_path / "api_check"
    run(
        [
            "gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-DBK_FE_MAX_FRAME=512u",
            "-Isrc", "-Imodel", str(src), "build/libbnnkws_kws.a", "-o", str(exe),
        ],
        library,
    )  # fmt: skip
    lines = run([str(exe)], library).splitlines()
    out = dict(line.split(" ", 1) for line in lines)
    assert (out["small"], out["unaligned"], out["null"]) == ("1", "1", "1")  # BK_KWS_ERR_MEM
    assert (out["stride0"], out["smooth9"], out["ok"]) == ("2", "2", "0")  # _ERR_CONFIG, OK
    # 1 s of audio makes 1 + (16000 - 512) // 320 = 49 feature rows: one full window, one
    # inference; after a reset the window fills again from nothing: one more
    events = [int(line.split()[1]) for line in lines if line.startswith("events")]
    assert events == [1, 2]
