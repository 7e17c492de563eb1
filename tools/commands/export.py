"""`bnnkws export CKPT --out DIR` and `bnnkws inspect BLOB`: the integer model file.

export: checkpoint -> integer model (generator/export/to_integer.py) -> blob (generator/export/blob.py,
docs/FORMAT.md), written as DIR/model.bkim with its accumulator certificate beside it.
inspect: header, sections, layers, sizes and the accumulator certificate of a blob.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bnnkws.generator.base.errors import BnnkwsError, FormatError
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
    p.add_argument("--out", type=Path, help="output folder of the blob and its certificate")
    p.add_argument(
        "--c-library",
        type=Path,
        metavar="DIR",
        help="also (or only) write a self-contained C library of the model into DIR "
        "(generator/codegen/c_library.py: sources, Makefile, CMakeLists.txt, example, README)",
    )
    p.set_defaults(func=_export)
    q = subparsers.add_parser(
        "inspect",
        help="print an integer model's header, layers, sizes and accumulator certificate",
        description="Check and describe an integer model file (.bkim).",
    )
    q.add_argument("blob", type=Path, help="integer model file")
    q.set_defaults(func=_inspect)


def _export(args: argparse.Namespace) -> int:
    if args.out is None and args.c_library is None:
        raise BnnkwsError("nothing to write: give --out DIR (the blob) and/or --c-library DIR")
    loaded = from_checkpoint(args.checkpoint)
    cert = format_certificate(model_certificate(loaded.model))
    if args.out is not None:
        path = write_atomic(args.out / BLOB_NAME, loaded.blob)
        write_atomic(args.out / "certificate.txt", cert + "\n")
        print(f"{args.checkpoint} -> {path}: {len(loaded.blob)} bytes, model {loaded.hash}")
    if args.c_library is not None:
        from bnnkws.generator.codegen.c_library import write_c_library

        lib = write_c_library(loaded.model, args.c_library, loaded.blob)
        print(
            f"{args.checkpoint} -> {lib}: C library of model {loaded.hash} (see {lib / 'README.md'})"
        )
    print(cert)
    return 0


def _inspect(args: argparse.Namespace) -> int:
    try:
        data = args.blob.read_bytes()
    except OSError as exc:
        raise FormatError(f"{args.blob}: cannot read ({exc.strerror})") from None
    print(describe(data, str(args.blob)))
    return 0
