# Entry script for the micropython binary:
#   micropython run_features.py PARAMS.bin AUDIO.s16le OUT.s8
# PARAMS.bin is the BKFE section, AUDIO raw little-endian int16, OUT raw int8 rows.
import struct
import sys

import frontend


def main(argv):
    with open(argv[1], "rb") as f:
        p = frontend.Params(f.read())
    with open(argv[2], "rb") as f:
        raw = f.read()
    samples = struct.unpack("<%dh" % (len(raw) // 2), raw)
    rows = frontend.features(p, samples)
    with open(argv[3], "wb") as f:
        for row in rows:
            f.write(struct.pack("%db" % len(row), *row))


main(sys.argv)
