"""`bnnkws export CKPT --out DIR` and `bnnkws inspect BLOB`: the integer model file.

export: checkpoint -> integer model (generator/export/to_integer.py) -> blob (generator/export/blob.py,
docs/FORMAT.md), written as DIR/model.bkim with its accumulator certificate beside it.
inspect: header, sections, layers, sizes and the accumulator certificate of a blob.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bnnkws.generator.base.errors import FormatError
from bnnkws.generator.base.fileio import write_atomic
from bnnkws.generator.export.loading import BLOB_NAME, describe, from_checkpoint
from bnnkws.generator.integer.certificate import format_certificate, model_certificate


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `export` and `inspect`."""
    p = subparsers.add_parser(
        "export",
        help="write the integer model (blob) of a checkpoint",
        description="Export a trained checkpoint to the integer model file DIR/model.bkim "
        "(docs/FORMAT.md) and print its accumulator certificate.",
    )
    p.add_argument("checkpoint", type=Path, help="checkpoint written by bnnkws train")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.set_defaults(func=_export)
    q = subparsers.add_parser(
        "inspect",
        help="print an integer model's header, layers, sizes and accumulator certificate",
        description="Check and describe an integer model file (.bkim).",
    )
    q.add_argument("blob", type=Path, help="integer model file")
    q.set_defaults(func=_inspect)


def _export(args: argparse.Namespace) -> int:
    loaded = from_checkpoint(args.checkpoint)
    path = write_atomic(args.out / BLOB_NAME, loaded.blob)
    cert = format_certificate(model_certificate(loaded.model))
    write_atomic(args.out / "certificate.txt", cert + "\n")
    print(f"{args.checkpoint} -> {path}: {len(loaded.blob)} bytes, model {loaded.hash}")
    print(cert)
    return 0


def _inspect(args: argparse.Namespace) -> int:
    try:
        data = args.blob.read_bytes()
    except OSError as exc:
        raise FormatError(f"{args.blob}: cannot read ({exc.strerror})") from None
    print(describe(data, str(args.blob)))
    return 0
