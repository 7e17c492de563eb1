"""Host build and bindings: the one build runner (build), the cffi bindings of the host
library (hostlib), torch == C == MicroPython checks (verify) and the MicroPython runner."""
