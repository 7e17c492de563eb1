"""The integer model: layer definitions, batch-norm folding, bit packing, the accumulator certificate."""
