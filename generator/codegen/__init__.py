"""Integer model -> C source (emit_c: model data and the layer table); a self-contained C
library of one model (c_library)."""
