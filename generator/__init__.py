"""From audio to C: data (data/), the integer front-end (frontend.py), the integer-model
definitions (integer/), training (training/), checkpoint -> integer model -> blob
(export/), and C emission (codegen/). Shared errors, atomic writes and paths: base/."""
