"""write_atomic: the only way bnnkws writes a result file."""

import os

import pytest

from bnnkws.generator.base import fileio


def test_writes_bytes_and_text_and_makes_the_folder(tmp_path):
    p = fileio.write_atomic(tmp_path / "a" / "b.bin", b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"
    fileio.write_atomic(p, "héllo\n")
    assert p.read_bytes() == "héllo\n".encode()
    assert sorted(os.listdir(p.parent)) == ["b.bin"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    p = tmp_path / "model.bkim"
    p.write_bytes(b"old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(fileio.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        fileio.write_atomic(p, b"new and longer")
    assert p.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["model.bkim"]
