"""Audio I/O, the Speech Commands loader and the speech synthesizer."""
