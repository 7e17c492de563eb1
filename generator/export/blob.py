"""The integer model file ("blob"): write, read, validate, describe.

The format is specified in docs/FORMAT.md; this module and reference/bnn.py (the
MicroPython reader) implement it. In short, little-endian throughout::

    header  "BKIM" u16 version u16 header_size u32 length u32 crc32(body)
    body    sections  tag[4] u32 size payload pad-to-4, in this order:
            MODL (counts)  FRNT (the BKFE front-end section, as is)  LABL (labels)
            LAYR x n_layers (record, name, bit-packed weights, per-channel parameters)
            META (JSON object)
            DETC (optional: the detector configuration, generator/export/detector_config.py)

The model hash is the SHA-256 of the body (everything after the 16-byte header); it
names the generated C, the build folders and the firmware's INFO answer.
A model read back from its bytes equals the model written, array for array.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bnnkws.generator.base.errors import FormatError
from bnnkws.generator.base.fileio import write_atomic
from bnnkws.generator.export.detector_config import ConfigError, DetectorConfig
from bnnkws.generator.export.layer_codes import (  # the LAYR record's codes
    ACT_CODES,
    INPUT_CODES,
    KIND_CODES,
    MODE_CODES,
    OUTPUT_CODES,
)
from bnnkws.generator.frontend import FrontendParams
from bnnkws.generator.integer.intmodel import (
    ConvLayer,
    IntegerModel,
    PoolLayer,
    pack_bits,
    unpack_bits,
)

MAGIC = b"BKIM"
VERSION = 1
HEADER = struct.Struct("<4sHHII")  # magic, version, header size, total length, CRC32 of body
SECTION = struct.Struct("<4sI")  # tag, payload size
MODL = struct.Struct("<HHHH")  # n_layers, n_frames, n_classes, reserved (0)
LAYER = struct.Struct("<BBBBBBHHHHHHH")  # see docs/FORMAT.md "LAYR"

INT32 = (-(2**31), 2**31 - 1)


def _decode(table: dict, code: int, where: str, field: str):
    for name, c in table.items():
        if c == code:
            return name
    raise FormatError(f"{where}: {field} code {code}, expected one of {sorted(table.values())}")


def _pad4(n: int) -> int:
    return (-n) % 4


def model_hash(blob: bytes) -> str:
    """SHA-256 (hex) of the blob body: the model's identity."""
    return hashlib.sha256(blob[HEADER.size :]).hexdigest()


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------
def _section(tag: bytes, payload: bytes) -> bytes:
    return SECTION.pack(tag, len(payload)) + payload + b"\0" * _pad4(len(payload))


def _check_range(name: str, field: str, a: np.ndarray, lo: int, hi: int) -> np.ndarray:
    a = np.asarray(a)
    if a.size and (int(a.min()) < lo or int(a.max()) > hi):
        raise FormatError(f"layer {name}: {field} outside {lo}..{hi}")
    return a.astype(np.int64)


def _u16(name: str, field: str, v: int) -> int:
    if not 0 <= int(v) <= 0xFFFF:
        raise FormatError(f"layer {name}: {field} {v} does not fit 16 bits")
    return int(v)


def _conv_payload(layer: ConvLayer) -> bytes:
    n = layer.name
    w = np.asarray(layer.weights)
    if w.size and not np.isin(w, (0, 1)).all():
        raise FormatError(f"layer {n}: weights must be bits 0/1")
    name = n.encode("utf-8")
    head = LAYER.pack(
        KIND_CODES["conv"],
        INPUT_CODES[layer.input],
        OUTPUT_CODES[layer.output],
        ACT_CODES[layer.out_act] if layer.out_act in ACT_CODES else 254,
        layer.acc_bits,
        MODE_CODES[layer.acc_mode],
        _u16(n, "tile", layer.tile),
        _u16(n, "c_in", layer.c_in),
        _u16(n, "c_out", layer.c_out),
        _u16(n, "kernel", layer.kernel),
        _u16(n, "stride", layer.stride),
        _u16(n, "groups", layer.groups),
        _u16(n, "name length", len(name)),
    )
    if head[3] == 254:
        raise FormatError(f"layer {n}: out_act {layer.out_act!r}, expected pm1, 01 or None")
    parts = [head, name, b"\0" * _pad4(len(head) + len(name))]
    parts.append(pack_bits(w.reshape(layer.c_out, layer.fan_in)).astype("<u4").tobytes())
    if layer.output == "threshold":
        parts.append(_check_range(n, "thr", layer.thr, *INT32).astype("<i4").tobytes())
        parts.append(_check_range(n, "flip", layer.flip, 0, 1).astype("u1").tobytes())
    else:
        parts.append(_check_range(n, "mu", layer.mu, *INT32).astype("<i4").tobytes())
        parts.append(_check_range(n, "beta", layer.beta, *INT32).astype("<i4").tobytes())
        parts.append(_check_range(n, "shift", layer.shift, -16, 16).astype("i1").tobytes())
        sign = _check_range(n, "sign", layer.sign, -1, 1)
        if np.any(sign == 0):
            raise FormatError(f"layer {n}: sign must be +1 or -1")
        parts.append(sign.astype("i1").tobytes())
    for field in (
        ("thr", "flip") if layer.output == "threshold" else ("mu", "beta", "shift", "sign")
    ):
        if np.asarray(getattr(layer, field)).shape != (layer.c_out,):
            raise FormatError(f"layer {n}: {field} must have shape ({layer.c_out},)")
    return b"".join(parts)


def _pool_payload(layer: PoolLayer, channels: int) -> bytes:
    name = layer.name.encode("utf-8")
    k = _u16(layer.name, "kernel", layer.kernel)
    head = LAYER.pack(
        KIND_CODES["pool_or"],
        0,
        0,
        ACT_CODES[None],
        0,
        0,
        0,
        channels,
        channels,
        k,
        k,
        1,
        _u16(layer.name, "name length", len(name)),
    )
    return head + name


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"meta value of type {type(o).__name__} is not JSON-serialisable")


def to_bytes(model: IntegerModel) -> bytes:
    """Serialise a validated integer model (docs/FORMAT.md)."""
    try:
        model.validate()
    except ValueError as exc:
        raise FormatError(f"integer model: {exc}") from None
    shapes = model.shapes()
    n_mels = model.frontend.n_mels
    body = [
        _section(
            b"MODL",
            MODL.pack(
                _u16("model", "n_layers", len(model.layers)),
                _u16("model", "n_frames", model.n_frames),
                _u16("model", "n_classes", len(model.labels)),
                0,
            ),
        )
    ]
    body.append(_section(b"FRNT", model.frontend.to_bytes()))
    labels = [s.encode("utf-8") for s in model.labels]
    if any(len(s) > 255 for s in labels):
        raise FormatError("labels: a label is longer than 255 UTF-8 bytes")
    body.append(
        _section(
            b"LABL", struct.pack("<H", len(labels)) + b"".join(bytes([len(s)]) + s for s in labels)
        )
    )
    for i, layer in enumerate(model.layers):
        if isinstance(layer, ConvLayer):
            body.append(_section(b"LAYR", _conv_payload(layer)))
        else:
            channels = shapes[i - 1][1] if i else n_mels
            body.append(_section(b"LAYR", _pool_payload(layer, channels)))
    # meta["detector"] travels in its own section (DETC), not in META's JSON
    detector = model.meta.get("detector")
    plain = {k: v for k, v in model.meta.items() if k != "detector"}
    try:
        meta = json.dumps(plain, sort_keys=True, separators=(",", ":"), default=_json_default)
    except (TypeError, ValueError) as exc:
        raise FormatError(f"meta: {exc}") from None
    body.append(_section(b"META", meta.encode("utf-8")))
    if detector is not None:
        try:
            det = DetectorConfig.from_dict(detector)
        except ConfigError as exc:
            raise FormatError(f"meta: {exc}") from None
        if det.n_classes != len(model.labels):
            raise FormatError(
                f"detector: {det.n_classes} thresholds for {len(model.labels)} labels"
            )
        body.append(_section(b"DETC", det.to_payload()))
    data = b"".join(body)
    return (
        HEADER.pack(MAGIC, VERSION, HEADER.size, HEADER.size + len(data), zlib.crc32(data)) + data
    )


def save(model: IntegerModel, path: str | Path) -> str:
    """Write the blob to `path`; returns the model hash."""
    data = to_bytes(model)
    write_atomic(path, data)
    return model_hash(data)


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------
@dataclass
class Section:
    tag: str
    offset: int  # of the payload, from the start of the blob
    size: int  # payload bytes (without padding)


@dataclass
class BlobInfo:
    """What the header and the section table say (inspect)."""

    version: int
    length: int
    crc32: int
    hash: str
    sections: list[Section]


def check_header(data: bytes, where: str = "model blob") -> BlobInfo:
    """Check magic, version, length and CRC32; list the sections. Raises FormatError."""
    if len(data) < HEADER.size:
        raise FormatError(
            f"{where}: {len(data)} bytes, too short for the {HEADER.size}-byte header"
        )
    magic, version, hsize, length, crc = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise FormatError(
            f"{where}: magic {magic!r}, expected {MAGIC!r} (not a bnnkws integer model)"
        )
    if version != VERSION:
        raise FormatError(f"{where}: version {version}, this bnnkws reads version {VERSION}")
    if hsize != HEADER.size:
        raise FormatError(f"{where}: header_size {hsize}, expected {HEADER.size}")
    if length != len(data):
        raise FormatError(
            f"{where}: length field says {length} bytes, the file has {len(data)}"
            + (" (truncated)" if len(data) < length else " (trailing data)")
        )
    actual = zlib.crc32(data[HEADER.size :])
    if crc != actual:
        raise FormatError(f"{where}: CRC32 mismatch (stored {crc:#010x}, computed {actual:#010x})")
    sections = []
    off = HEADER.size
    while off < len(data):
        if off + SECTION.size > len(data):
            raise FormatError(f"{where}: section header at byte {off} runs past the end")
        tag, size = SECTION.unpack_from(data, off)
        start = off + SECTION.size
        end = start + size + _pad4(size)
        if end > len(data):
            raise FormatError(
                f"{where}: section {tag!r} at byte {off} ({size} bytes) runs past the end"
            )
        sections.append(Section(tag.decode("latin-1"), start, size))
        off = end
    return BlobInfo(version, length, crc, model_hash(data), sections)


def _take(data: bytes, off: int, n: int, dt: str) -> tuple[np.ndarray, int]:
    a = np.frombuffer(data, dtype=dt, count=n, offset=off).copy()
    return a, off + n * a.itemsize


def _read_layer(data: bytes, sec: Section, where: str) -> tuple[ConvLayer | PoolLayer, int]:
    """Parse one LAYR payload; returns the layer and its channel count."""
    if sec.size < LAYER.size:
        raise FormatError(f"{where}: {sec.size} bytes, too short for a layer record")
    (kind, inp, out, act, bits, mode, tile, c_in, c_out, kernel, stride, groups, name_len) = (
        LAYER.unpack_from(data, sec.offset)
    )
    off = sec.offset + LAYER.size
    end = sec.offset + sec.size
    if off + name_len > end:
        raise FormatError(f"{where}: name_len {name_len} runs past the record")
    try:
        name = data[off : off + name_len].decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"{where}: name is not UTF-8") from None
    where = f"{where} ({name})"
    kind_s = _decode(KIND_CODES, kind, where, "kind")
    if kind_s == "pool_or":
        if sec.size != LAYER.size + name_len:
            raise FormatError(
                f"{where}: pool record is {sec.size} bytes, expected {LAYER.size + name_len}"
            )
        if kernel < 1 or stride != kernel:
            raise FormatError(
                f"{where}: pool kernel {kernel} / stride {stride}, expected equal and >= 1"
            )
        return PoolLayer(name, kernel), c_in
    off += name_len + _pad4(LAYER.size + name_len)
    if (
        groups < 1
        or kernel < 1
        or stride < 1
        or c_in < 1
        or c_out < 1
        or c_in % groups
        or c_out % groups
    ):
        raise FormatError(
            f"{where}: shape c_in {c_in} c_out {c_out} kernel {kernel} stride {stride} "
            f"groups {groups} is not a valid convolution"
        )
    fan_in = kernel * (c_in // groups)
    words = (fan_in + 31) // 32
    out_s = _decode(OUTPUT_CODES, out, where, "output")
    per_channel = 5 * c_out if out_s == "threshold" else 10 * c_out
    expected = off - sec.offset + 4 * c_out * words + per_channel
    if sec.size != expected:
        raise FormatError(f"{where}: layer record is {sec.size} bytes, its fields need {expected}")
    w, off = _take(data, off, c_out * words, "<u4")
    bits_arr = unpack_bits(w.reshape(c_out, words), fan_in)
    if words and np.any(pack_bits(bits_arr) != w.reshape(c_out, words)):
        raise FormatError(f"{where}: weight padding bits past the fan-in are not zero")
    kw: dict = {}
    if out_s == "threshold":
        kw["thr"], off = _take(data, off, c_out, "<i4")
        kw["flip"], off = _take(data, off, c_out, "u1")
    else:
        kw["mu"], off = _take(data, off, c_out, "<i4")
        kw["beta"], off = _take(data, off, c_out, "<i4")
        kw["shift"], off = _take(data, off, c_out, "i1")
        kw["sign"], off = _take(data, off, c_out, "i1")
    for k, v in kw.items():
        kw[k] = v.astype(v.dtype.newbyteorder("="))
    try:
        layer = ConvLayer(
            name=name,
            input=_decode(INPUT_CODES, inp, where, "input"),
            c_in=c_in,
            c_out=c_out,
            kernel=kernel,
            stride=stride,
            groups=groups,
            weights=bits_arr.reshape(c_out, kernel, c_in // groups),
            acc_bits=bits,
            acc_mode=_decode(MODE_CODES, mode, where, "acc_mode"),
            tile=tile,
            output=out_s,
            out_act=_decode(ACT_CODES, act, where, "out_act"),
            **kw,
        )
    except ValueError as exc:
        raise FormatError(f"{where}: {exc}") from None
    if out_s == "threshold" and np.any(layer.flip > 1):
        raise FormatError(f"{where}: flip must be 0 or 1")
    if out_s == "shiftbn" and (np.any(np.abs(layer.sign) != 1) or np.any(np.abs(layer.shift) > 16)):
        raise FormatError(f"{where}: sign must be +1/-1 and shift within -16..16")
    return layer, c_in


def from_bytes(data: bytes, where: str = "model blob") -> IntegerModel:
    """Parse and validate a blob; every defect raises FormatError naming the field."""
    data = bytes(data)
    info = check_header(data, where)
    tags = [s.tag for s in info.sections]
    detc = info.sections[-1] if tags and tags[-1] == "DETC" else None
    if detc is not None:
        tags = tags[:-1]
    if (
        len(tags) < 4
        or tags[:3] != ["MODL", "FRNT", "LABL"]
        or tags[-1] != "META"
        or any(t != "LAYR" for t in tags[3:-1])
    ):
        raise FormatError(f"{where}: sections {tags}, expected MODL FRNT LABL LAYR... META [DETC]")
    modl = info.sections[0]
    if modl.size != MODL.size:
        raise FormatError(f"{where}: MODL is {modl.size} bytes, expected {MODL.size}")
    n_layers, n_frames, n_classes, reserved = MODL.unpack_from(data, modl.offset)
    if n_layers != len(tags) - 4:
        raise FormatError(
            f"{where}: MODL n_layers {n_layers}, the blob has {len(tags) - 4} LAYR sections"
        )
    fr = info.sections[1]
    frontend = FrontendParams.from_bytes(data[fr.offset : fr.offset + fr.size], f"{where}: FRNT")
    lab = info.sections[2]
    labels = []
    off, end = lab.offset + 2, lab.offset + lab.size
    (count,) = struct.unpack_from("<H", data, lab.offset) if lab.size >= 2 else (None,)
    if count is None or count != n_classes:
        raise FormatError(f"{where}: LABL count {count}, MODL n_classes {n_classes}")
    for i in range(count):
        if off >= end or off + 1 + data[off] > end:
            raise FormatError(f"{where}: LABL label {i} runs past the section")
        try:
            labels.append(data[off + 1 : off + 1 + data[off]].decode("utf-8"))
        except UnicodeDecodeError:
            raise FormatError(f"{where}: LABL label {i} is not UTF-8") from None
        off += 1 + data[off]
    if off != end:
        raise FormatError(f"{where}: LABL has {end - off} bytes after the last label")
    layers: list = []
    for i, sec in enumerate(info.sections[3 : len(tags) - 1]):
        layer, _ = _read_layer(data, sec, f"{where}: layer {i}")
        layers.append(layer)
    meta_sec = info.sections[len(tags) - 1]
    try:
        meta = json.loads(data[meta_sec.offset : meta_sec.offset + meta_sec.size].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormatError(f"{where}: META is not a UTF-8 JSON object ({exc})") from None
    if not isinstance(meta, dict):
        raise FormatError(f"{where}: META is {type(meta).__name__}, expected a JSON object")
    if "detector" in meta:
        raise FormatError(f"{where}: META has a 'detector' key (it belongs in DETC)")
    if detc is not None:
        try:
            det = DetectorConfig.from_payload(
                data[detc.offset : detc.offset + detc.size], f"{where}: DETC"
            )
        except ConfigError as exc:
            raise FormatError(str(exc)) from None
        if det.n_classes != n_classes:
            raise FormatError(
                f"{where}: DETC has {det.n_classes} thresholds, MODL {n_classes} classes"
            )
        meta["detector"] = det.to_dict()
    model = IntegerModel(
        frontend=frontend, labels=labels, n_frames=n_frames, layers=layers, meta=meta
    )
    try:
        model.validate()
    except ValueError as exc:
        raise FormatError(f"{where}: {exc}") from None
    return model


def load(path: str | Path) -> IntegerModel:
    """Read a blob file (FormatError names the file)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise FormatError(f"{p}: cannot read ({exc.strerror})") from None
    return from_bytes(data, str(p))


# --------------------------------------------------------------------------------------
# Comparison (tests, verify)
# --------------------------------------------------------------------------------------
def layer_differences(a: ConvLayer | PoolLayer, b: ConvLayer | PoolLayer) -> list[str]:
    """Names of the fields in which two layers differ (empty when equal)."""
    if type(a) is not type(b):
        return ["kind"]
    if isinstance(a, PoolLayer):
        return [f for f in ("name", "kernel") if getattr(a, f) != getattr(b, f)]
    diff = [
        f
        for f in (
            "name",
            "input",
            "c_in",
            "c_out",
            "kernel",
            "stride",
            "groups",
            "acc_bits",
            "acc_mode",
            "tile",
            "output",
        )
        if getattr(a, f) != getattr(b, f)
    ]
    if not np.array_equal(
        np.asarray(a.weights, dtype=np.uint8), np.asarray(b.weights, dtype=np.uint8)
    ):
        diff.append("weights")
    fields = (
        ("out_act", "thr", "flip") if a.output == "threshold" else ("mu", "beta", "shift", "sign")
    )
    for f in fields:
        va, vb = getattr(a, f), getattr(b, f)
        if f == "out_act":
            if va != vb:
                diff.append(f)
        elif not np.array_equal(np.asarray(va, dtype=np.int64), np.asarray(vb, dtype=np.int64)):
            diff.append(f)
    return diff


def model_differences(a: IntegerModel, b: IntegerModel) -> list[str]:
    """Where two integer models differ ("labels", "layer 2 (conv1): thr", ...)."""
    diff = []
    if a.frontend.to_bytes() != b.frontend.to_bytes():
        diff.append("frontend")
    if list(a.labels) != list(b.labels):
        diff.append("labels")
    if a.n_frames != b.n_frames:
        diff.append("n_frames")
    if len(a.layers) != len(b.layers):
        return diff + ["layer count"]
    for i, (la, lb) in enumerate(zip(a.layers, b.layers, strict=True)):
        diff += [f"layer {i} ({la.name}): {f}" for f in layer_differences(la, lb)]
    return diff
