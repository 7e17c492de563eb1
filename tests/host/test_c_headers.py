"""The host bindings against the C they restate, compiled from the headers themselves.

* every struct that tools/host/hostlib.py declares to cffi: its size, and each field's
  offset and size, as the C compiler lays them out with the host library's flags;
* the layer codes (generator/export/layer_codes.py) against firmware/bnn.h's enum
  constants, reference/bnn.py's tables and docs/FORMAT.md's LAYR table;
* the kernels' plans that generator/codegen/emit_c.py needs at generation time (the
  weight layout, scratch words) against the C library's own answers.
"""

import re
import subprocess

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bnnkws.generator.base.paths import DOCS_DIR
from bnnkws.generator.codegen.emit_c import layer_fields, layer_scratch_words, weights_by_column
from bnnkws.generator.export import layer_codes
from bnnkws.generator.integer.intmodel import ConvLayer
from bnnkws.reference import bnn as ref
from bnnkws.tools.host import build, hostlib
from bnnkws.tools.host.hostlib import ffi, layer_struct, load

HEADERS = ("bnn.h", "frontend.h", "detector.h")
CDEFS = (hostlib.CDEF, hostlib.BNN_CDEF, hostlib.DET_CDEF, hostlib.COUNT_CDEF)


def cdef_structs() -> list[str]:
    """The typedef'd struct names of hostlib's cffi declarations."""
    names = []
    for text in CDEFS:
        names += re.findall(r"typedef\s+struct\s*\{[^{}]*\}\s*(\w+)\s*;", text)
    return names


def probe_source(structs: dict[str, list[str]], enums: list[str]) -> str:
    """C that prints `KEY VALUE` lines: sizes, offsets and field sizes, enum values."""
    lines = [f'#include "{h}"' for h in HEADERS]
    lines += ["#include <stddef.h>", "#include <stdio.h>", "", "int main(void) {"]
    for s, fields in structs.items():
        lines.append(f'    printf("sizeof {s} %zu\\n", sizeof({s}));')
        for f in fields:
            lines.append(f'    printf("offsetof {s}.{f} %zu\\n", offsetof({s}, {f}));')
            lines.append(f'    printf("sizeof {s}.{f} %zu\\n", sizeof((({s} *)0)->{f}));')
    for e in enums:
        lines.append(f'    printf("enum {e} %ld\\n", (long){e});')
    lines += ["    return 0;", "}", ""]
    return "\n".join(lines)


def run_probe(tmp_path, structs, enums) -> dict[str, int]:
    main = tmp_path / "probe.c"
    main.write_text(probe_source(structs, enums))
    exe = build.host_program(main, None, tmp_path, "probe")
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    return {k: int(v) for k, v in (line.rsplit(" ", 1) for line in out.splitlines())}


def layout_mismatches(the_ffi, structs: list[str], got: dict[str, int]) -> dict:
    """{key: (cffi, C)} where `the_ffi`'s layout of `structs` differs from the probe's."""
    want = {}
    for s in structs:
        want[f"sizeof {s}"] = the_ffi.sizeof(s)
        for f, field in the_ffi.typeof(s).fields:
            want[f"offsetof {s}.{f}"] = the_ffi.offsetof(s, f)
            want[f"sizeof {s}.{f}"] = the_ffi.sizeof(field.type)
    return {k: (v, got.get(k)) for k, v in want.items() if got.get(k) != v}


def test_cffi_structs_and_layer_codes_match_the_headers(tmp_path):
    names = cdef_structs()
    assert {"bk_layer_t", "bk_model_t", "bk_fe_params_t", "bk_op_counts_t"} <= set(names)
    structs = {s: [f for f, _ in ffi.typeof(s).fields] for s in names}
    enums = layer_codes.c_enums()
    got = run_probe(tmp_path, structs, list(enums))
    assert not layout_mismatches(ffi, names, got), "cffi (Python) vs C"
    assert {e: got[f"enum {e}"] for e in enums} == enums


def test_a_wrong_declaration_is_caught(tmp_path):
    """The comparison fails for a cffi declaration that does not match the header: here
    bk_layer_t.tile declared uint8_t instead of uint16_t, which alignment hides from every
    offset and the struct size; the field size shows it."""
    wrong = type(ffi)()
    decl = hostlib.BNN_CDEF[: hostlib.BNN_CDEF.index("} bk_layer_t;") + len("} bk_layer_t;")]
    wrong.cdef(decl.replace("uint16_t tile;", "uint8_t tile;"))
    fields = [f for f, _ in ffi.typeof("bk_layer_t").fields]
    got = run_probe(tmp_path, {"bk_layer_t": fields}, [])
    assert not layout_mismatches(ffi, ["bk_layer_t"], got)
    bad = layout_mismatches(wrong, ["bk_layer_t"], got)
    assert bad == {"sizeof bk_layer_t.tile": (1, 2)}


def test_reference_reader_uses_the_layer_codes():
    assert {"conv": ref.KIND_CONV, "pool_or": ref.KIND_POOL_OR} == layer_codes.KIND_CODES
    assert {n: i for i, n in enumerate(ref.INPUTS)} == layer_codes.INPUT_CODES
    assert {n: i for i, n in enumerate(ref.OUTPUTS)} == layer_codes.OUTPUT_CODES
    assert {n: i for i, n in enumerate(ref.MODES)} == layer_codes.MODE_CODES
    assert {n: c for c, n in ref.ACTS.items()} == layer_codes.ACT_CODES


def test_format_doc_lists_the_layer_codes():
    rows = {}
    for line in (DOCS_DIR / "FORMAT.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[2] in layer_codes.FIELDS:
            pairs = re.findall(r"(\d+) (\w+)", cells[3])
            rows[cells[2]] = {None if n == "none" else n: int(c) for c, n in pairs}
    assert rows == {f: codes for f, (codes, _) in layer_codes.FIELDS.items()}


@st.composite
def conv_layers(draw):
    groups = draw(st.sampled_from([1, 2, 4, 8]))
    cg = draw(st.one_of(st.integers(1, 40), st.sampled_from([32, 64, 96, 128, 400])))
    og = draw(st.one_of(st.integers(1, 40), st.sampled_from([24, 32, 48, 64, 96, 128, 160])))
    kernel = draw(st.integers(1, 5))
    c_out = groups * og
    output = draw(st.sampled_from(["threshold", "shiftbn"]))
    zeros32 = np.zeros(c_out, dtype=np.int32)
    arrays = (
        dict(out_act="01", thr=zeros32, flip=np.zeros(c_out, dtype=np.uint8))
        if output == "threshold"
        else dict(mu=zeros32, beta=zeros32, shift=zeros32, sign=np.ones(c_out, np.int32))
    )
    return ConvLayer(
        name="l",
        input=draw(st.sampled_from(["int8", "pm1", "01"])),
        c_in=groups * cg,
        c_out=c_out,
        kernel=kernel,
        stride=1,
        groups=groups,
        weights=np.zeros((c_out, kernel, cg), dtype=np.int8),
        acc_bits=draw(st.integers(4, 32)),
        acc_mode=draw(st.sampled_from(["wrap", "saturate"])),
        tile=draw(st.one_of(st.integers(1, 70), st.sampled_from([32, 64, 96, 128]))),
        output=output,
        **arrays,
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layer=conv_layers())
def test_generation_time_plans_match_the_c_library(layer):
    """emit_c decides the weight layout and sizes the work memory before any C runs; the
    kernels decide the same at run time (bk_weights_by_column, bk_layer_scratch_words)."""
    lib = load()
    L = layer_struct(layer_fields(layer, layer.kernel, 1, layer.c_in))
    assert weights_by_column(layer) == bool(lib.bk_weights_by_column(L))
    assert layer_scratch_words(layer) == lib.bk_layer_scratch_words(L)
