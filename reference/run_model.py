# Entry script for the micropython binary (also runs under CPython):
#   micropython run_model.py BLOB OUT features FEATS.s8
#   micropython run_model.py BLOB OUT audio CLIP.s16le [CLIP.s16le ...]
#   micropython run_model.py BLOB OUT stream ROWS.s8 STRIDE
# FEATS.s8 holds n inputs of n_frames x n_mels int8 features, back to back; each CLIP is
# raw little-endian int16 audio. OUT receives, per input, little-endian int32 values:
# (audio only) the features [n_frames][n_mels], then every layer's output [T][C] in
# layer order (bits as 0/1), exactly what bnn.Model computes. In stream mode ROWS.s8 holds
# a stream of n_mels int8 feature rows; OUT receives the scores of every window of
# n_frames rows starting every STRIDE rows (first at row 0), computed by bnn.Stream.
import struct
import sys

import bnn


def write_values(f, vals):
    step = 4096  # keep each struct.pack small for the MicroPython heap
    for i in range(0, len(vals), step):
        chunk = vals[i : i + step]
        f.write(struct.pack("<%di" % len(chunk), *chunk))


def run_one(model, feats, f):
    outs = model.forward_all(feats)
    for i in range(len(outs)):
        write_values(f, model.output_values(i, outs[i]))


def main(argv):
    with open(argv[1], "rb") as fb:
        model = bnn.Model(fb.read())
    n_mels = model.frontend.n_mels
    with open(argv[2], "wb") as f:
        if argv[3] == "features":
            with open(argv[4], "rb") as fi:
                raw = fi.read()
            size = model.n_frames * n_mels
            for start in range(0, len(raw), size):
                vals = struct.unpack_from("<%db" % size, raw, start)
                feats = [list(vals[t * n_mels : (t + 1) * n_mels]) for t in range(model.n_frames)]
                run_one(model, feats, f)
        elif argv[3] == "audio":
            for path in argv[4:]:
                with open(path, "rb") as fi:
                    raw = fi.read()
                samples = struct.unpack("<%dh" % (len(raw) // 2), raw)
                feats = model.features(samples)
                if len(feats) != model.n_frames:
                    raise ValueError(
                        "%s: %d frames, the model needs %d" % (path, len(feats), model.n_frames)
                    )
                vals = []
                for row in feats:
                    vals.extend(row)
                write_values(f, vals)
                run_one(model, feats, f)
        elif argv[3] == "stream":
            with open(argv[4], "rb") as fi:
                raw = fi.read()
            stride = int(argv[5])
            n_rows = len(raw) // n_mels
            rows = [list(struct.unpack_from("<%db" % n_mels, raw, r * n_mels)) for r in range(n_rows)]
            stream = bnn.Stream(model)
            for start in range(0, n_rows - model.n_frames + 1, stride):
                write_values(f, stream.scores(rows[start : start + model.n_frames], start))
        else:
            raise ValueError("mode %r, expected features, audio or stream" % argv[3])


main(sys.argv)
