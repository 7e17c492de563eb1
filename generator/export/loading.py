"""Load a model from a checkpoint or a blob: the integer model, its blob bytes and where it came from."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bnnkws.generator.base.errors import FormatError
from bnnkws.generator.export import blob as blobmod
from bnnkws.generator.integer.certificate import format_certificate, model_certificate
from bnnkws.generator.integer.intmodel import ConvLayer, IntegerModel

BLOB_NAME = "model.bkim"


@dataclass
class LoadedModel:
    """An integer model with its blob bytes; `torch_model` when it came from a checkpoint."""

    model: IntegerModel
    blob: bytes
    source: Path
    torch_model: object | None = None

    @property
    def hash(self) -> str:
        return blobmod.model_hash(self.blob)


def is_blob(path: str | os.PathLike) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == blobmod.MAGIC


def from_checkpoint(path: str | os.PathLike) -> LoadedModel:
    """Load a checkpoint and export it; the model returned is the one read back from its blob."""
    # torch: imported only when a checkpoint is read (blobs need numpy alone)
    from bnnkws.generator.export.to_integer import to_integer_model
    from bnnkws.generator.training.checkpoint import load_checkpoint

    torch_model, ckpt = load_checkpoint(path)
    meta = {"checkpoint": Path(path).name, "metrics": ckpt.get("metrics", {})}
    if "detector" in ckpt:  # calibrated: the blob's DETC section (detector_config.py)
        det = dict(ckpt["detector"])
        meta["calibration"] = det.pop("calibration", {})
        meta["detector"] = {
            k: det[k] for k in ("thr", "smooth", "temp_shift", "refractory") if k in det
        }
    try:
        im = to_integer_model(torch_model, meta=meta)
    except ValueError as exc:
        raise FormatError(f"{path}: {exc}") from None
    data = blobmod.to_bytes(im)
    return LoadedModel(
        blobmod.from_bytes(data, f"{path} (exported)"), data, Path(path), torch_model
    )


def load_any(path: str | os.PathLike) -> LoadedModel:
    """A blob (by its magic) or a checkpoint (exported on the fly)."""
    p = Path(path)
    if not p.is_file():
        raise FormatError(f"{p}: no such file")
    if is_blob(p):
        data = p.read_bytes()
        return LoadedModel(blobmod.from_bytes(data, str(p)), data, p)
    return from_checkpoint(p)


def describe(data: bytes, where: str = "model blob") -> str:
    """The text `inspect` prints: header, sections, model, layers, certificate."""
    info = blobmod.check_header(data, where)
    model = blobmod.from_bytes(data, where)
    lines = [
        f"{where}: bnnkws integer model, format version {info.version}",
        f"  length {info.length} bytes, CRC32 {info.crc32:#010x} (ok)",
        f"  model hash {info.hash}",
        "  sections:",
    ]
    for s in info.sections:
        lines.append(f"    {s.tag}  at {s.offset:6d}  {s.size:7d} bytes")
    fe = model.frontend
    lines += [
        f"  front-end: {fe.sample_rate} Hz, frame {fe.frame_len}, hop {fe.hop}, {fe.n_mels} mel bands, "
        f"log Q.{fe.log_frac_bits}, out shift {fe.out_shift}, offset {fe.out_offset}",
        f"  input: {model.n_frames} frames x {fe.n_mels} int8 features",
        f"  labels ({len(model.labels)}): {', '.join(model.labels)}",
        "  layers:",
        "    #  name          kind      in    c_in->c_out  k  s  g   T_out  acc              "
        "output        weights  params",
    ]
    t = model.n_frames
    for i, (layer, (t_out, c)) in enumerate(zip(model.layers, model.shapes(), strict=True)):
        if isinstance(layer, ConvLayer):
            wbytes = 4 * layer.c_out * ((layer.fan_in + 31) // 32)
            pbytes = layer.c_out * (5 if layer.output == "threshold" else 10)
            acc = f"{layer.acc_bits}b {layer.acc_mode}" + (
                f"/{layer.tile}" if layer.acc_mode == "saturate" else ""
            )
            out = f"{layer.output}" + (f" {layer.out_act}" if layer.output == "threshold" else "")
            lines.append(
                f"    {i:<2d} {layer.name:<13s} conv      {layer.input:<5s} {layer.c_in:4d}->{layer.c_out:<5d}"
                f"  {layer.kernel:<2d} {layer.stride:<2d} {layer.groups:<2d} {t:3d}->{t_out:<3d} "
                f"{acc:<16s} {out:<13s} {wbytes:7d}  {pbytes:6d}"
            )
        else:
            lines.append(
                f"    {i:<2d} {layer.name:<13s} pool_or   bits  {c:4d}->{c:<5d}  {layer.kernel:<2d} "
                f"{layer.kernel:<2d} -  {t:3d}->{t_out:<3d} {'-':<16s} {'-':<13s} {0:7d}  {0:6d}"
            )
        t = t_out
    lines.append("  accumulator certificate (exact worst case over all inputs, actual weights):")
    lines += ["    " + s for s in format_certificate(model_certificate(model)).splitlines()]
    if model.meta:
        keys = ", ".join(sorted(model.meta))
        lines.append(f"  meta: {keys}")
    return "\n".join(lines)
