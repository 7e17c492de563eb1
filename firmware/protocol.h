/* Serial frame codec shared by the firmware and the host library (docs/PROTOCOL.md).
 *
 * Frame (little-endian):
 *     off  size  field
 *     0    2     magic  'B' 'K' (0x42 0x4B)
 *     2    1     type   BK_MSG_* (host -> device below 0x80, device -> host from 0x80)
 *     3    1     seq    sequence number, mod 256
 *     4    2     len    payload bytes, 0..BK_PROTO_MAX_PAYLOAD
 *     6    2     hcrc   low 16 bits of CRC-32 over bytes 0..5: a damaged or false
 *                       header is rejected before its length is trusted
 *     8    len   payload (8-byte header: the payload is word-aligned in the parser)
 *     8+len 4    crc    CRC-32 over bytes 0..7+len
 *
 * The parser is a byte-at-a-time state machine over one fixed buffer of
 * BK_PROTO_MAX_FRAME bytes. On any error (header check, CRC, oversize length,
 * truncation) it drops the first byte of the candidate and rescans the bytes it
 * already holds, so a frame that followed a damaged one is still found; nothing grows
 * without bound. tools/device/protocol.py implements exactly the same machine (same events in
 * the same order), which tests/device/test_protocol.py checks by differential fuzzing.
 */
#ifndef BK_PROTOCOL_H
#define BK_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#define BK_PROTO_VERSION 1u
#define BK_PROTO_MAGIC0 0x42u /* 'B' */
#define BK_PROTO_MAGIC1 0x4Bu /* 'K' */
#define BK_PROTO_HEADER 8u
#define BK_PROTO_TRAILER 4u
#define BK_PROTO_MAX_PAYLOAD 512u
#define BK_PROTO_MAX_FRAME (BK_PROTO_HEADER + BK_PROTO_MAX_PAYLOAD + BK_PROTO_TRAILER)
/* seq values behind the expected one that count as retransmissions (re-ACKed, not run) */
#define BK_PROTO_DUP_WINDOW 16u

/* Message types. Host -> device requests: */
#define BK_MSG_HELLO 0x01u      /* u32 nonce, u8 version: new session, seq restarts */
#define BK_MSG_INFO_REQ 0x02u   /* empty -> INFO */
#define BK_MSG_STATS_REQ 0x03u  /* empty -> STATS */
#define BK_MSG_CONFIG 0x04u     /* detector and stride settings (bk_config wire form) */
#define BK_MSG_RESET 0x05u      /* empty: restart the audio stream, keep the settings */
#define BK_MSG_SHUTDOWN 0x06u   /* empty: ACK, then stop the board (semihosting exit 0) */
#define BK_MSG_AUDIO 0x10u      /* int16 PCM samples, 16 kHz mono */
#define BK_MSG_FEATURES 0x11u   /* whole int8 feature rows of n_mels values */
/* Device -> host: */
#define BK_MSG_ACK 0x80u        /* u8 seq: every request up to seq is done */
#define BK_MSG_HELLO_REPLY 0x81u
#define BK_MSG_INFO 0x82u
#define BK_MSG_STATS 0x83u
#define BK_MSG_RESULT 0x84u     /* u32 frame, int32 scores[n_classes] */
#define BK_MSG_DETECTION 0x85u  /* u32 frame, u8 class, u8 pad, u16 posterior Q15 */
#define BK_MSG_NAK 0x86u        /* u8 seq, u8 reason, u8 expected seq */
#define BK_MSG_ERROR 0x87u      /* u8 code, u8 seq, text */
#define BK_MSG_BOOT 0x88u       /* text: firmware version (sent once at reset, may be lost) */

/* NAK reasons and ERROR codes (one number space). */
#define BK_ERR_BAD_HEADER 1u    /* header check byte wrong (NAK) */
#define BK_ERR_BAD_CRC 2u       /* frame CRC wrong (NAK) */
#define BK_ERR_OVERSIZE 3u      /* len > BK_PROTO_MAX_PAYLOAD (ERROR) */
#define BK_ERR_TRUNCATED 4u     /* frame stopped arriving (NAK) */
#define BK_ERR_OUT_OF_ORDER 5u  /* seq is neither expected nor a recent one (NAK) */
#define BK_ERR_BAD_PAYLOAD 6u   /* payload length or values wrong for the type (ERROR) */
#define BK_ERR_UNKNOWN_TYPE 7u  /* (ERROR) */
#define BK_ERR_BAD_CONFIG 8u    /* CONFIG values out of range (ERROR) */

/* Parser events. */
#define BK_PROTO_NONE 0u
#define BK_PROTO_FRAME 1u
#define BK_PROTO_BAD_HEADER 2u
#define BK_PROTO_BAD_CRC 3u
#define BK_PROTO_OVERSIZE 4u
#define BK_PROTO_TRUNCATED 5u

typedef struct {
    uint8_t kind;            /* BK_PROTO_* */
    uint8_t type;            /* FRAME, BAD_CRC, OVERSIZE; TRUNCATED once the header passed */
    uint8_t seq;             /* as type */
    uint8_t header_ok;       /* 1 when type, seq and len come from a checked header */
    uint16_t len;            /* payload length from the header */
    const uint8_t *payload;  /* FRAME only, 4-byte aligned: valid until the next call */
} bk_proto_event_t;

typedef struct {
    uint32_t frames;      /* good frames */
    uint32_t bad_header;
    uint32_t bad_crc;
    uint32_t oversize;
    uint32_t truncated;
    uint32_t noise;       /* bytes dropped while hunting for a magic */
} bk_proto_counts_t;

typedef struct {
    uint16_t fill;        /* candidate frame in buf[0..fill) */
    uint16_t need;        /* its total length once the header is checked, else 0 */
    uint16_t pend;        /* bytes to rescan: buf[pend..pend_end), always fill <= pend */
    uint16_t pend_end;
    uint8_t holding;      /* the last call returned a FRAME that still sits in buf */
    bk_proto_counts_t counts;
    /* word-aligned, so a FRAME's payload (buf + 8) can be read as int16/int32 */
    _Alignas(4) uint8_t buf[BK_PROTO_MAX_FRAME];
} bk_proto_parser_t;

void bk_proto_parser_init(bk_proto_parser_t *p);

/* Consume bytes until an event or the end of data. Returns the bytes taken and sets
 * ev->kind (BK_PROTO_NONE when data ran out first). Bytes held for a rescan can yield
 * events with n == 0: call until it returns 0 bytes and ev->kind == BK_PROTO_NONE. */
size_t bk_proto_feed(bk_proto_parser_t *p, const uint8_t *data, size_t n, bk_proto_event_t *ev);

/* The link went quiet: report a partial frame as TRUNCATED and rescan its bytes.
 * Returns 1 and sets ev when a partial frame was pending, else 0. Call bk_proto_feed
 * with n == 0 afterwards to drain events from the rescan. */
int bk_proto_timeout(bk_proto_parser_t *p, bk_proto_event_t *ev);

/* 1 when the parser holds a partial frame (the caller's timeout applies). */
int bk_proto_busy(const bk_proto_parser_t *p);

/* Bytes the parser must still receive before it can report anything (>= 1; 0 when
 * bytes held for a rescan are waiting): a receiver may sleep until that many arrived. */
size_t bk_proto_wanted(const bk_proto_parser_t *p);

/* Fill the 8 header bytes of a frame. */
void bk_proto_header(uint8_t hdr[BK_PROTO_HEADER], uint8_t type, uint8_t seq, uint16_t len);

/* Whole frame into out (cap bytes). Returns its length, 0 when len or cap is too small. */
size_t bk_proto_encode(uint8_t *out, size_t cap, uint8_t type, uint8_t seq,
                       const uint8_t *payload, size_t len);

/* Little-endian field access for payloads. */
static inline void bk_put_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void bk_put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static inline uint16_t bk_get_u16(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t bk_get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

#endif
