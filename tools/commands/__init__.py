"""CLI subcommands, one module each: they parse arguments and print; the work is in the
library. A command imports its library modules inside its handler, so that `bnnkws --help`
and every other command start without loading torch, soundfile or cffi (the heavy optional
dependencies some commands need)."""
