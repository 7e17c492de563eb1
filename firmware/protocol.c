/* Frame codec; the format and the resynchronisation rule are described in protocol.h. */
#include "protocol.h"

#include <string.h>

#include "crc32.h"

static uint16_t header_check(const uint8_t *hdr) {
    return (uint16_t)(bk_crc32(0, hdr, 6u) & 0xFFFFu);
}

void bk_proto_header(uint8_t hdr[BK_PROTO_HEADER], uint8_t type, uint8_t seq, uint16_t len) {
    hdr[0] = BK_PROTO_MAGIC0;
    hdr[1] = BK_PROTO_MAGIC1;
    hdr[2] = type;
    hdr[3] = seq;
    bk_put_u16(&hdr[4], len);
    bk_put_u16(&hdr[6], header_check(hdr));
}

size_t bk_proto_encode(uint8_t *out, size_t cap, uint8_t type, uint8_t seq,
                       const uint8_t *payload, size_t len) {
    const size_t total = BK_PROTO_HEADER + len + BK_PROTO_TRAILER;
    if (len > BK_PROTO_MAX_PAYLOAD || cap < total) return 0;
    bk_proto_header(out, type, seq, (uint16_t)len);
    if (len) memcpy(out + BK_PROTO_HEADER, payload, len);
    bk_put_u32(out + BK_PROTO_HEADER + len, bk_crc32(0, out, BK_PROTO_HEADER + len));
    return total;
}

void bk_proto_parser_init(bk_proto_parser_t *p) { memset(p, 0, sizeof(*p)); }

int bk_proto_busy(const bk_proto_parser_t *p) { return p->fill > 0 && !p->holding; }

size_t bk_proto_wanted(const bk_proto_parser_t *p) {
    if (p->pend < p->pend_end) return 0;
    if (p->holding || p->fill < 2u) return 1; /* hunting for a magic */
    if (p->fill < BK_PROTO_HEADER) return BK_PROTO_HEADER - p->fill;
    return (size_t)(p->need - p->fill);
}

static void fill_event(const bk_proto_parser_t *p, uint8_t kind, bk_proto_event_t *ev) {
    ev->kind = kind;
    ev->header_ok = p->fill >= BK_PROTO_HEADER && kind != BK_PROTO_BAD_HEADER;
    ev->type = ev->header_ok ? p->buf[2] : 0u;
    ev->seq = ev->header_ok ? p->buf[3] : 0u;
    ev->len = ev->header_ok ? bk_get_u16(&p->buf[4]) : 0u;
    ev->payload = kind == BK_PROTO_FRAME ? &p->buf[BK_PROTO_HEADER] : NULL;
}

/* Drop the candidate's first byte and queue the rest, ahead of any bytes still queued,
 * for rescanning. fill <= pend, so the move is leftwards inside buf. */
static void rescan(bk_proto_parser_t *p) {
    const uint16_t queued = (uint16_t)(p->pend_end - p->pend);
    memmove(&p->buf[p->fill], &p->buf[p->pend], queued);
    p->pend = 1u;
    p->pend_end = (uint16_t)(p->fill + queued);
    if (p->pend >= p->pend_end) p->pend = p->pend_end = 0u;
    p->fill = 0u;
    p->need = 0u;
}

/* One byte through the state machine; returns the event kind (BK_PROTO_NONE mostly). */
static uint8_t step(bk_proto_parser_t *p, uint8_t byte, bk_proto_event_t *ev) {
    if (p->fill == 0u) {
        if (byte == BK_PROTO_MAGIC0) p->buf[p->fill++] = byte;
        else p->counts.noise++;
        return BK_PROTO_NONE;
    }
    if (p->fill == 1u) {
        if (byte == BK_PROTO_MAGIC1) {
            p->buf[p->fill++] = byte;
        } else if (byte == BK_PROTO_MAGIC0) {
            p->counts.noise++; /* the earlier magic byte was noise; this one may start a frame */
        } else {
            p->counts.noise += 2u;
            p->fill = 0u;
        }
        return BK_PROTO_NONE;
    }
    p->buf[p->fill++] = byte;
    if (p->fill == BK_PROTO_HEADER) {
        uint8_t kind = BK_PROTO_NONE;
        if (header_check(p->buf) != bk_get_u16(&p->buf[6])) {
            kind = BK_PROTO_BAD_HEADER;
            p->counts.bad_header++;
        } else if (bk_get_u16(&p->buf[4]) > BK_PROTO_MAX_PAYLOAD) {
            kind = BK_PROTO_OVERSIZE;
            p->counts.oversize++;
        }
        if (kind != BK_PROTO_NONE) {
            fill_event(p, kind, ev);
            rescan(p);
            return kind;
        }
        p->need = (uint16_t)(BK_PROTO_HEADER + bk_get_u16(&p->buf[4]) + BK_PROTO_TRAILER);
        return BK_PROTO_NONE;
    }
    if (p->need && p->fill == p->need) {
        const uint16_t body = (uint16_t)(p->need - BK_PROTO_TRAILER);
        if (bk_crc32(0, p->buf, body) == bk_get_u32(&p->buf[body])) {
            p->counts.frames++;
            fill_event(p, BK_PROTO_FRAME, ev);
            p->holding = 1u;
            return BK_PROTO_FRAME;
        }
        p->counts.bad_crc++;
        fill_event(p, BK_PROTO_BAD_CRC, ev);
        rescan(p);
        return BK_PROTO_BAD_CRC;
    }
    return BK_PROTO_NONE;
}

size_t bk_proto_feed(bk_proto_parser_t *p, const uint8_t *data, size_t n, bk_proto_event_t *ev) {
    ev->kind = BK_PROTO_NONE;
    ev->payload = NULL;
    if (p->holding) { /* the frame returned last time has been handled */
        p->holding = 0u;
        p->fill = 0u;
        p->need = 0u;
    }
    while (p->pend < p->pend_end) {
        const uint8_t byte = p->buf[p->pend++];
        if (p->pend == p->pend_end) p->pend = p->pend_end = 0u;
        if (step(p, byte, ev) != BK_PROTO_NONE) return 0u;
    }
    for (size_t i = 0; i < n; i++) {
        /* Inside a frame's body step() only stores bytes until the last one: take all
         * but the last in one copy (the same state as byte by byte). */
        if (p->need && p->fill >= BK_PROTO_HEADER && p->fill + 1u < p->need) {
            size_t k = (size_t)(p->need - 1u - p->fill);
            if (k > n - i) k = n - i;
            memcpy(&p->buf[p->fill], &data[i], k);
            p->fill = (uint16_t)(p->fill + k);
            i += k;
            if (i == n) break;
        }
        if (step(p, data[i], ev) != BK_PROTO_NONE) return i + 1u;
    }
    return n;
}

int bk_proto_timeout(bk_proto_parser_t *p, bk_proto_event_t *ev) {
    ev->kind = BK_PROTO_NONE;
    ev->payload = NULL;
    if (p->holding || p->fill == 0u) return 0;
    p->counts.truncated++;
    fill_event(p, BK_PROTO_TRUNCATED, ev);
    rescan(p);
    return 1;
}
