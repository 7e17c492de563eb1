"""Integer model -> C source (emit_c)."""
