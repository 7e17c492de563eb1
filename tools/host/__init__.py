"""The host library of the firmware C (SCons build, cffi bindings) and the MicroPython runner."""
