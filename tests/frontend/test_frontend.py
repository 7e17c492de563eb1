"""The integer front-end: one specification, three implementations, bit for bit."""

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest
from frontend_signals import clipped_sine, golden_inputs, lcg_noise, square_wave
from hypothesis import given, settings
from hypothesis import strategies as st

from bnnkws.generator import frontend as fe
from bnnkws.generator.base.errors import FormatError
from bnnkws.reference import frontend as ref
from bnnkws.tools.host import micropython_runner
from bnnkws.tools.host.hostlib import CFrontend

GOLDEN = Path(__file__).parent / "golden" / "frontend_golden.npz"
# sha256 of default_params().to_bytes(): the tables are part of the definition, so a
# change of rounding (numpy version, design tweak) must be a deliberate edit here.
DEFAULT_PARAMS_SHA256 = "3b8fe9dd75c00d70ced90f07dd70c09be3250972598a7a7c96b45dd0d53da61e"


@pytest.fixture(scope="module")
def params():
    return fe.default_params()


@pytest.fixture(scope="module")
def cfe(params):
    return CFrontend(params)


@pytest.fixture(scope="module")
def ref_params(params):
    return ref.Params(params.to_bytes())


def test_default_tables_are_frozen(params):
    data = params.to_bytes()
    assert hashlib.sha256(data).hexdigest() == DEFAULT_PARAMS_SHA256
    assert params.frame_len == 512 and params.hop == 320 and params.n_mels == 40
    assert params.n_frames(16000) == 49


def test_tables_follow_the_design(params):
    assert params.window[0] == 0 and params.window[256] == 32767  # periodic Hann
    assert params.cos_q15[0] == 32767 and params.sin_q15[0] == 0
    assert params.sin_q15[128] == 32767 and params.cos_q15[128] == 0
    assert np.all(params.mel_len >= 1)
    assert np.all(np.diff(params.mel_start.astype(int)) >= 0)  # bands rise in frequency
    assert params.mel_weights.max() <= 4096


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        (1, 0),
        (2, 64),
        (3, 101),
        (4, 128),
        (1 << 40, 40 * 64),
        ((1 << 62) - 1, 62 * 64 - 1),
        (1000, 637),
    ],
)
def test_ilog2_golden(x, expected, cfe):
    # log2(3) = 1.58496 -> 101.4 in Q6; log2(1000) = 9.96578 -> 637.8; truncation by squaring
    assert int(fe.ilog2_q(np.array([x], dtype=np.uint64), 6)[0]) == expected
    assert ref.ilog2_q(x, 6) == expected
    assert cfe.lib.bk_ilog2_q(x, 6) == expected


def test_ilog2_c_equals_numpy_at_every_fraction_step(cfe):
    # firmware/frontend.c finds the fraction of F = 6 by a threshold search: each of the
    # 64 steps of the fraction, on both sides of its edge, at exponents 0..62, and random x
    frac = np.arange(64)
    edges = []  # least Q30 mantissa of each fraction step, found from numpy's definition
    for j in frac[1:]:
        lo, hi = 1 << 30, (1 << 31) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            got = int(fe.ilog2_q(np.array([mid], dtype=np.uint64), 6)[0]) & 63
            lo, hi = (lo, mid) if got >= j else (mid + 1, hi)
        edges.append(lo)
    xs = [1, 2, 3, (1 << 62) - 1]
    for e in edges:
        for shift in (-30, -29, -17, -1, 0, 1, 13, 31):
            for d in (-1, 0, 1):
                m = e + d
                xs.append(m >> -shift if shift < 0 else m << shift)
    rng = np.random.default_rng(5)
    xs += [int(v) for v in rng.integers(1, 1 << 62, 2000, dtype=np.int64)]
    xs += [int(v) for v in rng.integers(1, 1 << 20, 2000, dtype=np.int64)]
    want = fe.ilog2_q(np.array(xs, dtype=np.uint64), 6)
    got = np.array([cfe.lib.bk_ilog2_q(x, 6) for x in xs])
    assert np.array_equal(got, want)
    assert set((want & 63).tolist()) == set(frac.tolist())
    other = [cfe.lib.bk_ilog2_q(x, 4) for x in xs[:300]]  # other F: the squaring loop
    assert np.array_equal(other, fe.ilog2_q(np.array(xs[:300], dtype=np.uint64), 4))


def test_ilog2_matches_float_log2_within_one_lsb():
    x = np.unique(
        np.concatenate([np.arange(1, 5000), (1.37 ** np.arange(1, 130)).astype(np.uint64)])
    )
    got = fe.ilog2_q(x.astype(np.uint64), 6)
    exact = np.log2(x.astype(np.float64)) * 64
    assert np.all(got <= exact + 1e-9) and np.all(got >= np.floor(exact) - 1)
    assert np.all(np.diff(got) >= 0)


def test_features_match_float_reference_within_one_step(params):
    x = (np.random.default_rng(3).standard_normal(16000) * 3000).astype(np.int16)
    frames = fe.frames_of(x, params).astype(np.float64) * (params.window / 32767.0)
    power = np.abs(np.fft.rfft(frames, axis=1) / params.frame_len) ** 2
    energy = power @ params.mel_matrix.astype(np.float64)
    q = np.floor((np.log2(energy + 1) * 64 - params.out_offset + 4) / 8)
    diff = fe.features(x, params).astype(int) - np.clip(q, -128, 127)
    assert np.abs(diff).max() <= 1
    assert np.mean(diff != 0) < 0.05


def test_golden_vectors_numpy_c_reference(params, cfe, ref_params):
    golden = np.load(GOLDEN)
    for name, audio in golden_inputs().items():
        want = golden[name]
        assert want.shape == (49, 40)
        assert np.array_equal(fe.features(audio, params), want), name
        assert np.array_equal(cfe.features(audio), want), name
        got_ref = np.array(ref.features(ref_params, audio.tolist()), dtype=np.int8)
        assert np.array_equal(got_ref, want), name


def _cases():
    n = 16000
    yield "random_full", lcg_noise(n, 11)
    for k, amp in enumerate((1, 7, 300, 5000)):
        yield f"random_{amp}", lcg_noise(n, 20 + k, amplitude=amp)
    yield "silence", np.zeros(n, dtype=np.int16)
    yield "dc_min", np.full(n, -32768, dtype=np.int16)
    yield "square_fast", square_wave(n, 2)
    yield "square_slow", square_wave(n, 160)
    yield "clipped", clipped_sine(n, 300.0, 10.0)
    yield "odd_length", lcg_noise(n + 123, 5)
    yield "shorter_than_frame", lcg_noise(400, 6)


@pytest.mark.parametrize(("name", "audio"), list(_cases()), ids=[c[0] for c in _cases()])
def test_numpy_equals_c_equals_reference(name, audio, params, cfe, ref_params):
    want = fe.features(audio, params)
    assert want.shape == (params.n_frames(audio.size), 40)
    assert np.array_equal(cfe.features(audio), want)
    got_ref = np.array(ref.features(ref_params, audio.tolist()), dtype=np.int8).reshape(-1, 40)
    assert np.array_equal(got_ref, want)


def test_micropython_binary_agrees(params):
    # the real micropython interpreter, not CPython running reference/
    audio = np.concatenate(
        [lcg_noise(8000, 7), square_wave(4000, 50), clipped_sine(4000, 700, 2.0)]
    )
    assert np.array_equal(micropython_runner.features(params, audio), fe.features(audio, params))


@settings(max_examples=15, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=4000), min_size=0, max_size=6))
def test_streaming_equals_batch(cuts, params, cfe, ref_params):
    audio = lcg_noise(4000, 9, amplitude=9000)
    bounds = [0, *sorted(cuts), audio.size]
    chunks = [audio[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    want = fe.features(audio, params)
    stream = fe.FeatureStream(params)
    got = np.concatenate([stream.push(c) for c in chunks])
    assert np.array_equal(got, want)
    assert np.array_equal(cfe.stream(chunks), want)
    rs = ref.FeatureStream(ref_params)
    rows = [row for c in chunks for row in rs.push(c.tolist())]
    assert np.array_equal(np.array(rows, dtype=np.int8).reshape(-1, 40), want)


def test_batch_of_clips_equals_single(params):
    clips = np.stack([lcg_noise(16000, s, amplitude=a) for s, a in ((1, 32767), (2, 100), (3, 3))])
    batch = fe.features_batch(clips, params, chunk=2)
    for i in range(3):
        assert np.array_equal(batch[i], fe.features(clips[i], params))


def test_params_roundtrip_and_corruption(params):
    data = params.to_bytes()
    back = fe.FrontendParams.from_bytes(data)
    assert back.to_bytes() == data
    bad = bytearray(data)
    bad[100] ^= 1
    with pytest.raises(FormatError, match="CRC32"):
        fe.FrontendParams.from_bytes(bytes(bad))
    with pytest.raises(FormatError, match="magic"):
        fe.FrontendParams.from_bytes(b"XXXX" + data[4:])
    with pytest.raises(FormatError, match="truncated|bytes"):
        fe.FrontendParams.from_bytes(data[:-10])
    with pytest.raises(ref.FrontendError):
        ref.Params(bytes(bad))


def test_other_shapes_stay_bit_exact(cfe):
    # the C and reference code take their shape from the tables, not from constants
    p = fe.make_params(fe.FrontendConfig(frame_len=256, hop=128, n_mels=20, out_offset=1300))
    c = CFrontend(p, lib=cfe.lib)
    audio = lcg_noise(3000, 13, amplitude=12000)
    want = fe.features(audio, p)
    assert want.shape == (p.n_frames(3000), 20)
    assert np.array_equal(c.features(audio), want)
    rp = ref.Params(p.to_bytes())
    assert np.array_equal(np.array(ref.features(rp, audio.tolist()), dtype=np.int8), want)


def test_fast_path_takes_make_params_tables_of_every_size(cfe):
    # firmware/frontend.c runs its 16-bit FFT only on twiddle tables whose hash is one of
    # make_params' (CANON_HASH, the tables its no-overflow argument covers); any other
    # table takes the 32-bit reference path. Both give the spec's features.
    import ctypes

    from bnnkws.tools.host import build

    counter = ctypes.CDLL(str(build.host_library(None))).bk_fe_fallbacks
    counter.restype = ctypes.c_uint32
    audio = lcg_noise(2200, 17, amplitude=20000)
    for n in (16, 32, 64, 128, 256, 512, 1024):
        p = fe.make_params(fe.FrontendConfig(frame_len=n, hop=n // 2, n_mels=max(4, n // 16)))
        before = counter()
        assert np.array_equal(CFrontend(p, lib=cfe.lib).features(audio), fe.features(audio, p))
        assert counter() == before, n
    p = fe.default_params()
    cos = p.cos_q15.copy()
    cos[37] += 1  # one twiddle one step off
    off = dataclasses.replace(p, cos_q15=cos)
    before = counter()
    want = fe.features(audio, off)
    assert np.array_equal(CFrontend(off, lib=cfe.lib).features(audio), want)
    assert counter() == before + want.shape[0]


def test_cli_three_implementations_agree(tmp_path):
    from bnnkws.generator.data.audio_io import write_wav
    from bnnkws.tools.cli import main

    wav = tmp_path / "clip.wav"
    write_wav(wav, lcg_noise(16000, 21, amplitude=4000))
    outs = []
    for impl in ("numpy", "c", "micropython"):
        out = tmp_path / f"{impl}.npy"
        assert main(["features", str(wav), "--impl", impl, "--out", str(out)]) == 0
        outs.append(np.load(out))
    assert outs[0].shape == (49, 40) and outs[0].dtype == np.int8
    assert all(np.array_equal(outs[0], o) for o in outs[1:])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"", "empty file"),
        (b"RIFF\x00\x00junk", "not a readable audio file"),
    ],
)
def test_cli_bad_audio_is_one_line(tmp_path, capsys, content, message):
    from bnnkws.tools.cli import main

    path = tmp_path / "bad.wav"
    if content is not None:
        path.write_bytes(content)
    assert main(["features", str(path), "--out", str(tmp_path / "f.npy")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and str(path) in err and "\n" not in err
    assert not (tmp_path / "f.npy").exists()


def test_cli_other_rate_and_channels_are_converted(tmp_path, capsys):
    # the conversion rule is tested in tests/data/test_audio_input.py
    import soundfile as sf

    from bnnkws.tools.cli import main

    sf.write(tmp_path / "r8k.wav", np.zeros(8000, dtype=np.int16), 8000, subtype="PCM_16")
    sf.write(tmp_path / "st.wav", np.zeros((16000, 2), dtype=np.int16), 16000, subtype="PCM_16")
    assert main(["features", str(tmp_path / "r8k.wav")]) == 0
    captured = capsys.readouterr()
    assert "8000 Hz mono PCM_16 -> 16000 Hz mono int16" in captured.err
    assert "16000 samples (1.00 s) -> 49 frames" in captured.out
    assert main(["features", str(tmp_path / "st.wav")]) == 0
    assert "16000 Hz stereo PCM_16 -> 16000 Hz mono int16" in capsys.readouterr().err
