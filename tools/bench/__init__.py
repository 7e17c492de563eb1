"""Benchmarks: host, Cortex-M (QEMU icount), the accelerator model and its report."""
