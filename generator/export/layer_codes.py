"""The layer field codes, in one place: the blob's LAYR records (docs/FORMAT.md), the C
layer table (``bk_layer_t``, the enums of firmware/bnn.h) and the MicroPython reader
(reference/bnn.py) all use these numbers.

Python reads them from here (generator/export/blob.py, generator/codegen/emit_c.py,
tools/host/hostlib.py); tests/host/test_c_headers.py checks firmware/bnn.h's enum
constants (compiled), reference/bnn.py's tables and docs/FORMAT.md's LAYR table against
them.
"""

from __future__ import annotations

KIND_CODES = {"conv": 0, "pool_or": 1}
INPUT_CODES = {"int8": 0, "pm1": 1, "01": 2}
OUTPUT_CODES = {"threshold": 0, "shiftbn": 1}
ACT_CODES = {"pm1": 0, "01": 1, None: 255}
MODE_CODES = {"wrap": 0, "saturate": 1}

# bk_layer_t field -> (its codes, the prefix of its C enum constants in firmware/bnn.h)
FIELDS: dict[str, tuple[dict, str]] = {
    "kind": (KIND_CODES, "BK_LAYER_"),
    "input": (INPUT_CODES, "BK_IN_"),
    "output": (OUTPUT_CODES, "BK_OUT_"),
    "out_act": (ACT_CODES, "BK_ACT_"),
    "acc_mode": (MODE_CODES, "BK_ACC_"),
}


def c_enum(field: str, code: int) -> str:
    """The firmware/bnn.h constant of `code` in bk_layer_t field `field`
    (``c_enum("input", 2) == "BK_IN_01"``, ``c_enum("out_act", 255) == "BK_ACT_NONE"``)."""
    codes, prefix = FIELDS[field]
    for name, c in codes.items():
        if c == code:
            return prefix + ("NONE" if name is None else name.upper())
    raise KeyError(f"{field}: no code {code}")


def c_enums() -> dict[str, int]:
    """Every C constant with its number: what firmware/bnn.h must define."""
    return {
        c_enum(field, code): code for field, (codes, _) in FIELDS.items() for code in codes.values()
    }
