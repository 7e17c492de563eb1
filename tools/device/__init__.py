"""The device: serial protocol, serial link, QEMU, firmware builds, the streaming detector."""
