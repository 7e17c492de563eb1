/* CRC-32 (IEEE 802.3, the zlib / PNG / Ethernet CRC): reflected polynomial
 * 0xEDB88320, initial value 0xFFFFFFFF, final XOR 0xFFFFFFFF.
 * bk_crc32(0, "123456789", 9) == 0xCBF43926, equal to Python's zlib.crc32.
 */
#ifndef BK_CRC32_H
#define BK_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* Continue a CRC: pass 0 to start, or the previous result to extend it over more bytes. */
uint32_t bk_crc32(uint32_t crc, const void *data, size_t n);

#endif
