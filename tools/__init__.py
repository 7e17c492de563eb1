"""bnnkws: binarized keyword spotting toolchain."""

__version__ = "0.1.0"
