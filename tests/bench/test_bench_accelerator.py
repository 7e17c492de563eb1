"""`bnnkws bench accelerator`: which results it reads, the int8 view of the float baselines,
the choice of N, and the page it writes (from hand-made ablation results: no training)."""

import argparse
import json
from dataclasses import asdict

import pytest
import torch

from bnnkws.generator.base.errors import BnnkwsError
from bnnkws.generator.training import ablation
from bnnkws.generator.training.model import DSCNN, BnnKws, TCResNet8, bnn_config, float_config
from bnnkws.tools.bench import accelerator as ba
from bnnkws.tools.bench import accelerator_report as rep
from bnnkws.tools.bench.accelerator_model import AcceleratorConfig
from bnnkws.tools.commands import bench_accelerator as cmd

# test accuracies of the hand-made results
ACC = {
    "dense-fbn-plain-32w-s0": 0.900,
    "structured-sbn-plain-32w-s0": 0.905,
    "structured-sbn-collab-6w-s0": 0.850,
    "structured-sbn-collab-8w-s0": 0.880,  # 2 points below the baseline
    "structured-sbn-collab-10w-s0": 0.895,  # within 1 point
    "dscnn-s0": 0.930,
    "tcresnet8-s0": 0.920,
    "dnn-s0": 0.850,
}
INT8 = {"dscnn-s0": 0.925, "tcresnet8-s0": 0.880, "dnn-s0": 0.840}  # int8-simulated accuracies


def _parse(argv):
    p = argparse.ArgumentParser(prog="bnnkws")
    cmd.register(p.add_subparsers(dest="command"))
    return p.parse_args(argv)


def _write_results(folder, bits=(6, 8, 10), modes=("wrap",)):
    jobs, _ = ba.needed_jobs(bits, modes)
    folder.mkdir(parents=True, exist_ok=True)
    settings = {
        "data": {"root": "/data/sc", "keywords": ["yes", "no"]},
        "epochs": 40,
        "subset": None,
        "device": "cuda",
    }
    for j in jobs:
        if j.name not in ACC:
            continue
        test = {
            f"{b}{m[0]}": {"bits": b, "mode": m, "accuracy": ACC[j.name], "n": 100}
            for b, m in j.deploy
        }
        if not j.deploy:
            test = {
                "32w": {"bits": 32, "mode": "wrap", "accuracy": ACC[j.name], "n": 100},
                "int8": {"bits": 8, "mode": "int8", "accuracy": INT8[j.name], "n": 100},
            }
        out = {
            "job": asdict(j),
            "settings": settings,
            "test": test,
            "cost": {},
            "wall_s": 1.0,
            "history": [],
        }
        (folder / f"{j.name}.json").write_text(json.dumps(out))
    return jobs


def test_needed_jobs_are_the_ablations():
    jobs, cells = ba.needed_jobs((8,), ("wrap", "saturate"))
    assert {j.name for j in jobs} == {
        "dense-fbn-plain-32w-s0",
        "structured-sbn-plain-32w-s0",
        "structured-sbn-collab-8w-s0",
        "structured-sbn-collab-8s-s0",
    } | {f"{kind}-s0" for kind in ablation.ZOO}
    assert len(ablation.ZOO) == 10 and {"dscnn", "tcresnet8"} <= set(ablation.ZOO)
    assert cells[("ovf", 32, "wrap", 0)][0] == "dense-fbn-plain-32w-s0"
    assert cells[("collab", 8, "saturate", 0)][0] == "structured-sbn-collab-8s-s0"


@pytest.mark.parametrize("cls", [DSCNN, TCResNet8])
def test_int8_view_of_float_baselines(cls):
    model = cls(float_config("dscnn" if cls is DSCNN else "tcresnet8", 10))
    layers, n_in = ba.mac_layers(model)
    assert n_in == 49 * 40
    # the trainer's own count of multiply-accumulates and of conv/linear weights
    assert sum(m.macs for m in layers) == model.macs()
    weights = sum(
        m.weight.numel()
        for m in model.modules()
        if isinstance(m, torch.nn.Conv1d | torch.nn.Conv2d | torch.nn.Linear)
    )
    assert sum(m.weights for m in layers) == weights
    assert layers[-1].kind == "fc" and layers[-2].kind == "avgpool"
    if cls is TCResNet8:
        assert sum(m.kind == "add" for m in layers) == 3  # one residual addition per block
    else:
        assert sum(m.kind == "dwconv" for m in layers) == 4


def _entries(accs: dict[int, float | None], base: float | None):
    cfg = AcceleratorConfig()
    res, cells = {}, {}
    for b, a in accs.items():
        name = f"structured-sbn-collab-{b}w-s0"
        cells[("collab", b, "wrap", 0)] = (name, b, "wrap")
        if a is not None:
            res[name] = {"test": {f"{b}w": {"accuracy": a}}}
    cells[("ovf", 32, "wrap", 0)] = ("dense-fbn-plain-32w-s0", 32, "wrap")
    if base is not None:
        res["dense-fbn-plain-32w-s0"] = {"test": {"32w": {"accuracy": base}}}
    return ba.build_entries(res, cells, cfg, tuple(accs), ("wrap",))


@pytest.mark.parametrize(
    ("accs", "base", "n"),
    [
        ({6: 0.89, 8: 0.895, 10: 0.9}, 0.90, 8),  # N = 8 within 1 point
        ({6: 0.80, 8: 0.88, 10: 0.895, 12: 0.9}, 0.90, 10),  # the smallest N within 1 point
        ({6: 0.80, 8: 0.85}, 0.90, 8),  # none within: N = 8 and its shortfall
        ({6: None, 8: None}, None, 8),  # nothing measured
    ],
)
def test_headline_n(accs, base, n):
    entries = _entries(accs, base)
    assert ba.headline_bits(entries, "wrap", base) == n


def test_page_from_results(tmp_path, capsys):
    results, docs = tmp_path / "res", tmp_path / "docs"
    _write_results(results)
    args = _parse(
        [
            "bench",
            "accelerator",
            "--results",
            str(results),
            "--docs",
            str(docs),
            "--bits",
            "6",
            "8",
            "10",
            "--modes",
            "wrap",
            "--no-mcu",
        ]
    )
    assert args.func(args) == 0
    page = (docs / "ACCELERATOR.md").read_text()
    assert (docs / "accelerator.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # N = 8 is 2 points below the baseline, N = 10 within 1 point: the headline is N = 10
    assert "| ours N=10 wrap against | compute area | bit-operations |" in page

    def row(label: str) -> list[str]:
        line = next(x for x in page.splitlines() if x.startswith(f"| {label} |"))
        return [c.strip() for c in line.strip("|").split("|")]

    # ours (89.5) against the int8 accuracies: DS-CNN 92.5 (-3.0: misses; z = 0.03 /
    # sqrt(2 x 0.91 x 0.09 / 100) = 0.74, p = 0.46), DNN 84.0 (+5.5)
    assert row("DS-CNN")[4] == "-3.0 points, p = 0.46" and row("DS-CNN")[-1] == "**misses**"
    assert row("DNN")[4].startswith("+5.5 points") and row("DNN")[-1] == "**holds**"
    assert row("TC-ResNet8")[4].startswith("+1.5 points")
    assert row("LSTM")[4] == "not measured" and row("LSTM")[-1] == "–"
    # the methods table: published, float and int8 accuracy side by side
    ds = next(x for x in page.splitlines() if x.startswith("| DS-CNN | 94.4 | Zhang et al. 2017"))
    assert "| 93.0 | 92.5 |" in ds
    assert row("BNN dense, 32-bit acc., standard BN")[2] == "90.0"
    assert row("ours (full method), N=8 wrap")[2] == "88.0"
    # the safe baseline carries the 32-bit structured network's accuracy
    assert row("BNN structured, per-layer minimal safe widths (certificate)")[2] == "90.5"
    assert "40 epochs, all training clips, cuda" in page
    assert "Not measured (`--no-mcu`)." in page
    assert (
        "Do the paper's claims hold here?" in page
        and "ours is more than 1 point below DS-CNN" in page
    )
    out = capsys.readouterr().out
    assert "ours N=10 wrap:" in out and "wrote" in out


def test_costs_only_without_results(tmp_path):
    docs = tmp_path / "docs"
    args = _parse(
        [
            "bench",
            "accelerator",
            "--quick",
            "--results",
            str(tmp_path / "none"),
            "--docs",
            str(docs),
            "--no-mcu",
        ]
    )
    assert args.func(args) == 0
    page = (docs / "ACCELERATOR.md").read_text()
    assert page.startswith("# Accelerator model") and "(quick smoke run)" in page
    assert "no trainings, so no accuracies" in page
    assert "not measured" in page and "`structured-sbn-collab-8w-s0`" in page
    assert "Accuracy: not measured (no saved results)." in page
    assert (docs / "accelerator.png").is_file()


def test_trained_checkpoint_costs_what_the_preset_costs(tmp_path):
    from bnnkws.generator.training.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = BnnKws(bnn_config("structured", 10, acc_bits=8, acc_mode="wrap"))
    save_checkpoint(
        tmp_path / "checkpoints" / "structured-sbn-collab-8w-s0.pt",
        model,
        [f"c{i}" for i in range(10)],
    )
    _, cells = ba.needed_jobs((8,), ("wrap",))
    entries = ba.build_entries({}, cells, AcceleratorConfig(), (8,), ("wrap",), tmp_path)
    checked = {e.key for e in entries if e.checked}
    assert checked == {"ours-N8w"}


def test_bad_arguments_are_named():
    with pytest.raises(BnnkwsError, match="--bits 40"):
        args = _parse(["bench", "accelerator", "--bits", "40", "--no-mcu"])
        args.func(args)
    with pytest.raises(BnnkwsError, match="pe_rows"):
        args = _parse(
            ["bench", "accelerator", "--pe-rows", "0", "--no-mcu", "--results", "/nonexistent"]
        )
        args.func(args)


def test_no_emulator_no_mcu_figures(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    entries = _entries({8: None}, None)
    note = ba.measure_mcu(entries, ["base"], None)
    assert "not installed" in note and all(e.mcu is None for e in entries)


def test_a_model_file_gets_its_own_row(tmp_path):
    from bnn_models import random_integer_model

    from bnnkws.generator.export import blob
    from bnnkws.tools.bench.accelerator_model import model_cost

    model = random_integer_model(1, arch="structured", n_classes=10)
    path = tmp_path / "default.bkim"
    path.write_bytes(blob.to_bytes(model))
    e = ba.file_entry(path, AcceleratorConfig())
    assert e.label.startswith("default model (`default.bkim`") and e.accuracy is None
    assert e.cost.summary() == model_cost(model).summary()


def test_a_checkpoint_row_carries_its_test_accuracy(tmp_path):
    from bnnkws.generator.training.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = BnnKws(bnn_config("structured", 10, acc_bits=8))
    path = tmp_path / "default.pt"
    metrics = {"test": {"accuracy": 0.9294}}
    save_checkpoint(path, model, [f"c{i}" for i in range(10)], metrics=metrics)
    e = ba.file_entry(path, AcceleratorConfig())
    assert e.accuracy == pytest.approx(0.9294)


def test_a_failed_firmware_build_is_reported_not_fatal(monkeypatch, tmp_path):
    from bnnkws.generator.base.errors import BuildError

    def broken(case, root, audio_s):
        raise BuildError("scons target=mps2-an386 failed (exit 2):\nbconv_bin.c: error")

    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr("bnnkws.tools.bench.mcu.measure", broken)
    entries = _entries({8: None}, None)
    note = ba.measure_mcu(entries, ["base", "ours-N8w"], tmp_path, log=lambda s: None)
    assert note.startswith("Cortex-M4 figures not measured: base failed (BuildError: scons")
    assert all(e.mcu is None for e in entries)


def test_mcu_figures_are_full_window_counts_of_a_long_enough_stream(monkeypatch, tmp_path):
    """The accelerator counts an inference whole: its Cortex-M4 column takes the firmware's
    FULL_WINDOW count, from a stream long enough for the measurement's 2-s warm-up (1.5 s
    once left no steady state and stopped the command)."""
    from types import SimpleNamespace

    seen = []

    def fake(case, root, audio_s):
        seen.append(audio_s)
        return SimpleNamespace(instructions=100, full_window=300)

    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr("bnnkws.tools.bench.mcu.measure", fake)
    entries = _entries({8: None}, None)
    assert ba.measure_mcu(entries, ["base"], tmp_path, log=lambda s: None) == ""
    assert seen and all(a >= 3.0 for a in seen)
    assert next(e for e in entries if e.key == "base").mcu == 300


def test_mcu_note_reads_the_measured_steps():
    _, cells = ba.needed_jobs((8,), ("wrap", "saturate"))
    entries = ba.build_entries({}, cells, AcceleratorConfig(), (8,), ("wrap", "saturate"))
    for key, n in (
        ("base", 100_000),
        ("struct32", 80_000),
        ("ours-N8w", 60_000),
        ("ours-N8s", 120_000),
    ):
        next(e for e in entries if e.key == key).mcu = n
    note = rep.mcu_note(ba.Report(entries, AcceleratorConfig(), ("wrap", "saturate"), "cmd"))
    assert (
        "the architecture alone (dense to structured, both 32-bit) changes the instruction count by -20.0%"
        in note
    )
    assert (
        "the accumulator alone (32 to 8 bits wrap, same layers) changes the instruction count by -25.0%"
        in note
    )
    assert "saturate instead of wrap at N=8 changes the instruction count by +100.0%" in note


def test_minimal_safe_widths_never_overflow_and_compute_the_32_bit_result():
    import numpy as np

    from bnnkws.generator.integer.certificate import model_certificate

    wide = ba.preset_model("structured", 32, "wrap")
    safe = ba.safe_width_model(wide)
    certs = model_certificate(safe)
    assert all(not c.can_overflow for c in certs)
    assert [c.acc_bits for c in certs] == [max(4, c.min_bits) for c in certs]
    assert max(c.acc_bits for c in certs) < 32
    x = np.random.default_rng(0).integers(-128, 128, (4, 49, 40))
    np.testing.assert_array_equal(safe.forward(x), wide.forward(x))
    # one bit less somewhere and the certificate says it can overflow
    narrower = ba.replace(safe.layers[0], acc_bits=certs[0].acc_bits - 1)
    assert model_certificate(ba.replace(safe, layers=[narrower, *safe.layers[1:]]))[0].can_overflow


def test_versus_and_the_claims():
    _, cells = ba.needed_jobs((8,), ("wrap",))
    entries = ba.build_entries({}, cells, AcceleratorConfig(), (8,), ("wrap",))
    get = {e.key: e for e in entries}
    ours, base = get["ours-N8w"], get["base"]
    v = ba.versus(ours, base)
    assert v.area == pytest.approx(1 - ours.cost.hw.compute_ge / base.cost.hw.compute_ge)
    assert v.bitops == pytest.approx(1 - ours.cost.bitops / base.cost.bitops)
    assert v.speed == pytest.approx(base.cost.latency_us() / ours.cost.latency_us() - 1)
    assert v.acc_diff is None and v.meets["accuracy"] is None
    ours.accuracy, base.accuracy = 0.90, 0.92
    v = ba.versus(ours, base, n_test=1000)
    assert v.acc_diff == pytest.approx(-0.02) and v.meets["accuracy"] is False
    assert 0.1 < v.p_value < 0.2  # 2 points on 1000 clips near 90%: not significant
    assert ba.two_proportion_p(0.9, 0.9, 100) == pytest.approx(1.0)
    assert ba.two_proportion_p(0.9, 0.8, 2000) < 1e-6


def test_sensitivity_recosts_every_model():
    _, cells = ba.needed_jobs((8,), ("wrap",))
    cfg = AcceleratorConfig()
    entries = ba.build_entries({}, cells, cfg, (8,), ("wrap",), methods=("dnn", "tcresnet8"))
    ours = next(e for e in entries if e.key == "ours-N8w")
    others = [e for e in entries if e.key in ("base", "safe") or e.family == "int8"]
    rows = {r.label: r for r in ba.sensitivity(ours, others, cfg)}
    plain = rows["none (the parameters above)"].vs
    assert plain["base"].area == pytest.approx(ba.versus(ours, others[0]).area)
    prefix = rows["prefix (Sklansky) adders instead of ripple"].vs
    assert prefix["base"].speed < plain["base"].speed  # short carry chains: the 32-bit clock gains
    equal = next(r for label, r in rows.items() if label.startswith("int8 machine with the area"))
    assert set(equal.vs) == {"dnn", "tcresnet8"}
    for v in equal.vs.values():  # as many MAC units as fit: no more area than ours
        assert v.other.cost.hw.compute_ge <= ours.cost.hw.compute_ge
        assert v.other.cost.config.pe_rows >= 1


def _tiny_speech(root, per_word: int = 6) -> None:
    """Tones in the Speech Commands layout: two keywords and an other word, noise."""
    import numpy as np

    from bnnkws.generator.data.audio_io import write_wav

    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    val, test = [], []
    for word, f in {"yes": 500.0, "no": 1500.0, "cat": 3000.0}.items():
        for j in range(per_word):
            clip = 8000 * np.exp(-((t - 0.5) ** 2) / 0.02) * np.sin(2 * np.pi * f * t)
            clip += 200 * rng.standard_normal(16000)
            name = f"{word}/spk{j}_nohash_0.wav"
            write_wav(root / name, np.clip(clip, -32768, 32767).astype(np.int16))
            (val if j % 3 == 1 else test if j % 3 == 2 else []).append(name)
    noise = (300 * rng.standard_normal(48000)).astype(np.int16)
    write_wav(root / "_background_noise_" / "noise.wav", noise)
    (root / "validation_list.txt").write_text("\n".join(val) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")


def test_quick_run_trains_the_missing_jobs_and_reports_them(tmp_path):
    data, results = tmp_path / "sc", tmp_path / "res"
    _tiny_speech(data)
    argv = ["bench", "accelerator", "--quick", "--data", str(data), "--keywords", "yes", "no"]
    argv += ["--results", str(results), "--cache", str(tmp_path / "cache"), "--epochs", "1"]
    args = _parse(argv + ["--no-mcu"])
    assert args.func(args) == 0
    saved = {p.stem for p in results.glob("*.json")}
    assert {f"{k}-s0" for k in ablation.ZOO} <= saved and "structured-sbn-collab-8w-s0" in saved
    zoo = json.loads((results / "bcresnet1-s0.json").read_text())
    assert set(zoo["test"]) == {"32w", "int8"} and zoo["settings"]["epochs"] == 1
    page = (results / "ACCELERATOR.md").read_text()
    assert "(quick smoke run)" in page and "accuracies come from smoke trainings" in page
    row = next(x for x in page.splitlines() if x.startswith("| BC-ResNet-1 | 96.6 |"))
    assert row.count("–") == 0  # float and int8 accuracy measured
