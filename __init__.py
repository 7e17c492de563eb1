"""bnnkws: binarized keyword spotting toolchain.

The package ``bnnkws`` is this checkout's root folder: every import path names the folder
that holds it (``bnnkws.generator.training.train`` is generator/training/train.py). The
pipeline and where each stage lives: docs/ARCHITECTURE.md.
"""

__version__ = "0.1.0"
