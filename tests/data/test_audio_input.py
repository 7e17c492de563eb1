"""Audio as people have it: any rate, channel count and bit depth -> 16 kHz mono int16;
truncated files; dataset-level notices; bad dataset folders; `bnnkws features` end to end."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from bnnkws.generator.base.errors import AudioError, DatasetError
from bnnkws.generator.data.audio_io import AudioNote, read_audio, wav_data_chunk
from bnnkws.generator.data.dataset import load_arrays, load_dataset

BITS = {"PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32}


def signal(rate: int, channels: int, seconds: float = 0.5, seed: int = 0) -> np.ndarray:
    """A float test signal [n, channels] in (-1, 1): tones per channel plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    cols = [
        0.45 * np.sin(2 * np.pi * (300 + 500 * c) * t) + 0.1 * rng.standard_normal(t.size)
        for c in range(channels)
    ]
    return np.clip(np.stack(cols, axis=1), -0.95, 0.95)


def write_as(path: Path, s: np.ndarray, rate: int, subtype: str) -> np.ndarray:
    """Write ``s`` with ``subtype`` and return the float64 values the file holds.

    Integer PCM of b bits holds round(s * 2^(b-1)); FLOAT holds float32(s).
    """
    if subtype == "FLOAT":
        stored = s.astype(np.float32)
        sf.write(str(path), stored, rate, subtype="FLOAT")
        return stored.astype(np.float64)
    bits = BITS[subtype]
    q = np.clip(np.rint(s * 2.0 ** (bits - 1)), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    # soundfile writes int32 data through libsndfile's int path: the top `bits` bits are kept
    sf.write(str(path), (q.astype(np.int64) << (32 - bits)).astype(np.int32), rate, subtype=subtype)
    return q / 2.0 ** (bits - 1)


def reference(stored: np.ndarray, up: int, down: int) -> np.ndarray:
    """The documented rule computed here: channel mean, resample_poly(up, down), x 32768,
    round half to even, clip to int16."""
    mono = stored.mean(axis=1)
    y = resample_poly(mono, up, down) if (up, down) != (1, 1) else mono
    return np.clip(np.rint(y * 32768.0), -32768, 32767).astype(np.int16)


CASES = [
    # rate, channels, subtype, up, down, notice source
    (48000, 2, "PCM_24", 1, 3, "48000 Hz stereo PCM_24"),
    (8000, 1, "PCM_16", 2, 1, "8000 Hz mono PCM_16"),
    (44100, 1, "FLOAT", 160, 441, "44100 Hz mono FLOAT"),
    (16000, 1, "PCM_U8", 1, 1, "16000 Hz mono PCM_U8"),
    (11025, 3, "PCM_U8", 640, 441, "11025 Hz 3-channel PCM_U8"),
    (16000, 2, "PCM_32", 1, 1, "16000 Hz stereo PCM_32"),
]


@pytest.mark.parametrize(("rate", "channels", "subtype", "up", "down", "source"), CASES)
def test_any_format_becomes_16k_mono_int16(
    tmp_path: Path, capsys, rate, channels, subtype, up, down, source
) -> None:
    path = tmp_path / "clip.wav"
    stored = write_as(path, signal(rate, channels), rate, subtype)
    assert sf.info(str(path)).subtype == subtype
    got = read_audio(path)
    want = reference(stored, up, down)
    assert got.dtype == np.int16 and got.shape == (-(-stored.shape[0] * up // down),)
    np.testing.assert_array_equal(got, want)
    err = capsys.readouterr().err
    assert err == f"notice: {path}: {source} -> 16000 Hz mono int16\n"


def test_native_16k_mono_int16_is_read_as_stored_without_notice(tmp_path: Path, capsys) -> None:
    samples = np.random.default_rng(1).integers(-32768, 32768, 9000).astype(np.int16)
    for name in ("a.wav", "a.flac"):
        sf.write(str(tmp_path / name), samples, 16000, subtype="PCM_16")
        np.testing.assert_array_equal(read_audio(tmp_path / name), samples)
    assert capsys.readouterr().err == ""


def test_conversion_rounds_half_to_even_and_clips(tmp_path: Path) -> None:
    # 16 kHz float: no resampling, only x 32768, round half to even, clip
    x = np.array([0.5 / 32768, 1.5 / 32768, -2.5 / 32768, 1.25, -1.5, 32767.5 / 32768])
    sf.write(str(tmp_path / "f.wav"), x, 16000, subtype="DOUBLE")
    got = read_audio(tmp_path / "f.wav", report=None)
    assert got.tolist() == [0, 2, -2, 32767, -32768, 32767]


def test_resampler_keeps_the_band_and_removes_aliases(tmp_path: Path) -> None:
    """Independent of the rule's code: a 1 kHz tone at 48 kHz comes out as the same tone at
    16 kHz; a 10 kHz tone (above the new Nyquist) is removed."""
    t48 = np.arange(48000) / 48000
    t16 = np.arange(16000) / 16000
    sf.write(str(tmp_path / "tone.wav"), 0.5 * np.sin(2 * np.pi * 1000 * t48), 48000, "FLOAT")
    got = read_audio(tmp_path / "tone.wav", report=None).astype(np.float64)
    ideal = 0.5 * 32768 * np.sin(2 * np.pi * 1000 * t16)
    assert np.max(np.abs(got - ideal)[400:-400]) < 0.002 * 16384  # -54 dB
    sf.write(str(tmp_path / "hi.wav"), 0.5 * np.sin(2 * np.pi * 10000 * t48), 48000, "FLOAT")
    alias = read_audio(tmp_path / "hi.wav", report=None).astype(np.float64)[400:-400]
    assert np.sqrt(np.mean(alias**2)) < 10 ** (-50 / 20) * 16384 / np.sqrt(2)


def test_nan_samples_are_refused(tmp_path: Path) -> None:
    sf.write(str(tmp_path / "nan.wav"), np.array([0.0, np.nan, 0.1]), 8000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan.wav: holds NaN or infinite samples"):
        read_audio(tmp_path / "nan.wav")


# --- truncated files ---------------------------------------------------------------------------


def data_offset(raw: bytes) -> int:
    """Byte offset of the data chunk's size field in a WAV written by soundfile."""
    pos = raw.index(b"data")
    return pos + 4


def test_wav_cut_mid_frame_is_read_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "cut.wav"
    stored = write_as(path, signal(48000, 2, seconds=1000 / 48000), 48000, "PCM_24")
    raw = path.read_bytes()
    assert wav_data_chunk(path) == (6, 6000, 6000)
    path.write_bytes(raw[:-100])  # 5900 bytes left: 983 frames of 6 bytes and 2 bytes
    notes: list[AudioNote] = []
    got = read_audio(path, report=notes.append)
    assert [n.kind for n in notes] == ["truncated", "converted"]
    assert notes[0].text == (
        f"{path}: truncated WAV: data chunk declares 1000 frames, file holds 983 "
        "and 2 byte(s) of a cut-off frame; reading the 983 frames present"
    )
    np.testing.assert_array_equal(got, reference(stored[:983], 1, 3))


def test_wav_data_chunk_claiming_more_is_read_with_a_warning(tmp_path: Path, capsys) -> None:
    path = tmp_path / "long.wav"
    samples = np.arange(-800, 800, dtype=np.int16) * 7
    sf.write(str(path), samples, 16000, subtype="PCM_16")
    raw = bytearray(path.read_bytes())
    struct.pack_into("<I", raw, data_offset(raw), 2 * 5000)
    path.write_bytes(raw)
    np.testing.assert_array_equal(read_audio(path), samples)
    assert capsys.readouterr().err == (
        f"warning: {path}: truncated WAV: data chunk declares 5000 frames, file holds 1600; "
        "reading the 1600 frames present\n"
    )


def test_wav_data_chunk_ending_mid_frame_is_named(tmp_path: Path) -> None:
    path = tmp_path / "odd.wav"
    sf.write(str(path), np.ones(100, dtype=np.int16), 16000, subtype="PCM_16")
    raw = bytearray(path.read_bytes())
    struct.pack_into("<I", raw, data_offset(raw), 199)  # 99.5 frames declared, 100 present
    path.write_bytes(raw)
    notes: list[AudioNote] = []
    got = read_audio(path, report=notes.append)
    assert got.size == 99
    assert [n.text for n in notes] == [
        f"{path}: WAV data chunk of 199 bytes ends mid-frame (2-byte frames); "
        "reading the 99 whole frames"
    ]


def test_intact_and_unknown_length_wav_give_no_warning(tmp_path: Path) -> None:
    path = tmp_path / "ok.wav"
    sf.write(str(path), np.ones(100, dtype=np.int16), 16000, subtype="PCM_16")
    notes: list[AudioNote] = []
    read_audio(path, report=notes.append)
    raw = bytearray(path.read_bytes())
    struct.pack_into("<I", raw, data_offset(raw), 0xFFFFFFFF)  # streaming writer: size unknown
    path.write_bytes(raw)
    read_audio(path, report=notes.append)
    assert notes == []


def test_truncated_flac_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.flac"
    sf.write(str(path), signal(16000, 1, seconds=2.0), 16000, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(AudioError, match=r"cut\.flac: truncated or corrupt FLAC file \(") as err:
        read_audio(path)
    assert "\n" not in str(err.value)


# --- datasets ------------------------------------------------------------------------------------


def make_dataset(root: Path) -> Path:
    """yes (2 clips 48 kHz stereo PCM_24, 1 clip 16 kHz int16), cat (1 clip 8 kHz), lists,
    a 44.1 kHz float background file."""
    for word, name, rate, ch, subtype in [
        ("yes", "a_nohash_0.wav", 48000, 2, "PCM_24"),
        ("yes", "b_nohash_0.wav", 48000, 2, "PCM_24"),
        ("yes", "c_nohash_0.wav", 16000, 1, "PCM_16"),
        ("cat", "a_nohash_0.wav", 8000, 1, "PCM_16"),
    ]:
        (root / word).mkdir(parents=True, exist_ok=True)
        write_as(root / word / name, signal(rate, ch, seconds=1.0), rate, subtype)
    (root / "_background_noise_").mkdir()
    write_as(root / "_background_noise_" / "n.wav", signal(44100, 1, 2.0), 44100, "FLOAT")
    (root / "validation_list.txt").write_text("yes/c_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("")
    return root


def test_dataset_prints_one_summary_not_a_notice_per_file(tmp_path: Path, capsys) -> None:
    root = make_dataset(tmp_path / "d")
    d = load_dataset(root, ["yes"], "train", silence_fraction=1.0, unknown_fraction=None)
    assert d.label_counts() == {"_silence_": 2, "_unknown_": 1, "yes": 2}
    audio, _ = load_arrays(d, progress=False)
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"notice: {root}: 4 file(s) converted to 16000 Hz mono int16 (2 from 48000 Hz stereo "
        "PCM_24, 1 from 44100 Hz mono FLOAT, 1 from 8000 Hz mono PCM_16)"
    ]
    for i, e in enumerate(d.entries):
        if not e.silence:  # each clip is exactly 1 s after conversion: no padding
            np.testing.assert_array_equal(audio[i], read_audio(e.source, report=None))


def test_dataset_summarises_truncated_files(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "d")
    clip = root / "yes" / "c_nohash_0.wav"
    clip.write_bytes(clip.read_bytes()[:-1001])
    d = load_dataset(root, ["yes"], "validation", 0.0, None)
    notes: list[AudioNote] = []
    load_arrays(d, progress=False, report=notes.append)
    assert [n.kind for n in notes] == ["truncated"]
    assert notes[0].text.startswith(f"{root}: 1 file(s) shorter than their headers declare")
    assert "data chunk declares 16000 frames, file holds 15499 and 1 byte(s)" in notes[0].text


def test_split_list_naming_a_missing_clip(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "d")
    (root / "testing_list.txt").write_text("cat/a_nohash_0.wav\nyes/gone_nohash_0.wav\n")
    with pytest.raises(
        DatasetError,
        match=r"testing_list.txt:2: 'yes/gone_nohash_0.wav' names a clip that is not in the "
        r"folder \(1 such line\(s\)\)",
    ):
        load_dataset(root, ["yes"], "train")


def test_keyword_folder_without_clips(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "d")
    (root / "no").mkdir()
    (root / "no" / "notes.txt").write_text("no audio here\n")
    with pytest.raises(DatasetError, match=r"keyword folder\(s\) no hold no .wav/.flac clips"):
        load_dataset(root, ["yes", "no"], "train")


@pytest.mark.parametrize("state", ["missing", "empty", "short"])
def test_background_folder_problems_are_named(tmp_path: Path, state: str) -> None:
    root = make_dataset(tmp_path / "d")
    folder = root / "_background_noise_"
    (folder / "n.wav").unlink()
    if state == "missing":
        folder.rmdir()
    if state == "short":
        sf.write(str(folder / "s.wav"), np.zeros(8000, dtype=np.int16), 16000)
    expected = {
        "missing": "no such folder",
        "empty": r"holds no .wav/.flac file",
        "short": r"no background file of at least 1 s \(longest 0.50 s of 1\)",
    }[state]
    with pytest.raises(DatasetError, match=rf"_background_noise_: {expected}; expected long"):
        load_dataset(root, ["yes"], "train", silence_fraction=0.5)
    assert len(load_dataset(root, ["yes"], "train", silence_fraction=0.0)) == 3


# --- command line --------------------------------------------------------------------------------


def test_features_command_takes_a_48k_stereo_recording(tmp_path: Path, capsys) -> None:
    from bnnkws.generator import frontend
    from bnnkws.tools.cli import main

    path = tmp_path / "phone.wav"
    stored = write_as(path, signal(48000, 2, seconds=1.0), 48000, "PCM_24")
    out = tmp_path / "f.npy"
    assert main(["features", str(path), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.err == f"notice: {path}: 48000 Hz stereo PCM_24 -> 16000 Hz mono int16\n"
    assert "16000 samples (1.00 s) -> 49 frames x 40 bands" in captured.out
    want = frontend.features(reference(stored, 1, 3), frontend.default_params())
    np.testing.assert_array_equal(np.load(out), want)
