/* CRC-32 with a 16-entry (4-bit) table: 64 bytes of flash instead of the usual 1 KiB,
 * two table steps per byte. On the serial link this runs once per received byte, so it
 * costs far less than the network per second of audio (measured in docs/BENCH_MCU.md). */
#include "crc32.h"

/* crc_table[i] = CRC of the 4-bit value i shifted through the reflected polynomial. */
static const uint32_t crc_table[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u,
    0x4DB26158u, 0x5005713Cu, 0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
    0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu,
};

uint32_t bk_crc32(uint32_t crc, const void *data, size_t n) {
    const uint8_t *p = (const uint8_t *)data;
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        crc = (crc >> 4) ^ crc_table[crc & 0xFu];
        crc = (crc >> 4) ^ crc_table[crc & 0xFu];
    }
    return ~crc;
}
