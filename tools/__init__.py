"""Host build and bindings (host/), the device link (device/), benchmarks (bench/) and the
command line (cli.py, commands/): everything after code generation."""
