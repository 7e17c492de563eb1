/* Random-frame fuzzer for the C frame parser (firmware/protocol.c), built by
 * tests/device/test_protocol.py with -fsanitize=address,undefined (no libFuzzer/clang here).
 *
 *   fuzz_protocol ROUNDS SEED
 *
 * Each round builds a byte stream of valid frames (random type, seq, length, payload
 * that names the frame), damaged frames (bit flips, cut short, oversize length, bad
 * header check byte) and noise, then feeds it in random chunk sizes with random
 * "link went quiet" timeouts. Checked: no memory error (sanitizers), parser fields stay
 * in bounds, every FRAME event is a frame that was sent intact and byte-identical, and
 * nearly all intact frames are recovered. Some losses are inherent: a frame cut one byte
 * short, followed by a frame whose first byte ('B') equals the missing CRC byte, is a
 * valid frame on the wire (1 in 256 such cuts), and it swallows the next frame's magic.
 * Prints one line of totals; exit status 0 when every check held.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"

static uint64_t rng_state;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

#define STREAM_MAX (64u * 1024u)
#define MAX_SENT 512u

typedef struct {
    uint8_t type, seq;
    uint16_t len;
    uint32_t id;
    int intact;
    int got;
} sent_t;

static uint8_t stream[STREAM_MAX];
static sent_t sent[MAX_SENT];
static size_t item_end[2u * MAX_SENT]; /* offsets where a frame or a noise burst ends */

static int fail(const char *what, unsigned round) {
    fprintf(stderr, "fuzz_protocol: round %u: %s\n", round, what);
    return 1;
}

int main(int argc, char **argv) {
    const unsigned rounds = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 1000u;
    rng_state = argc > 2 ? strtoull(argv[2], NULL, 10) * 2654435761u + 1u : 88172645463325252ull;
    static bk_proto_parser_t parser;
    uint64_t total_bytes = 0, total_frames = 0, total_intact = 0, total_got = 0;
    uint64_t total_errors = 0;
    for (unsigned r = 0; r < rounds; r++) {
        size_t n = 0;
        unsigned n_sent = 0, n_items = 0;
        while (n < STREAM_MAX - BK_PROTO_MAX_FRAME - 64u && n_sent < MAX_SENT) {
            const uint32_t what = rnd() % 100u;
            if (what < 10u) { /* noise, sometimes full of magic bytes */
                const unsigned k = rnd() % 40u;
                for (unsigned i = 0; i < k; i++) {
                    const uint32_t b = rnd();
                    stream[n++] = (b & 0x300u) == 0u ? BK_PROTO_MAGIC0 : (uint8_t)b;
                }
                item_end[n_items++] = n;
                continue;
            }
            uint8_t payload[BK_PROTO_MAX_PAYLOAD];
            const uint16_t len = (uint16_t)((rnd() & 1u) ? rnd() % 16u : rnd() % (BK_PROTO_MAX_PAYLOAD + 1u));
            const uint32_t id = (r << 10) ^ n_sent;
            for (unsigned i = 0; i < len; i++) payload[i] = (uint8_t)rnd();
            if (len >= 4u) bk_put_u32(payload, id);
            sent_t *s = &sent[n_sent++];
            s->type = (uint8_t)rnd();
            s->seq = (uint8_t)rnd();
            s->len = len;
            s->id = id;
            s->got = 0;
            const size_t at = n;
            n += bk_proto_encode(&stream[n], STREAM_MAX - n, s->type, s->seq, payload, len);
            s->intact = len >= 4u;
            if (what < 55u) { /* intact */
                item_end[n_items++] = n;
                continue;
            }
            s->intact = 0;
            if (what < 70u) { /* flip bits */
                const unsigned flips = 1u + rnd() % 3u;
                for (unsigned i = 0; i < flips; i++) stream[at + rnd() % (n - at)] ^= (uint8_t)(1u << (rnd() % 8u));
            } else if (what < 85u) { /* cut short */
                n = at + rnd() % (n - at);
            } else if (what < 93u) { /* oversize length with a valid header check */
                bk_proto_header(&stream[at], s->type, s->seq,
                                (uint16_t)(BK_PROTO_MAX_PAYLOAD + 1u + rnd() % 60000u));
            } else { /* bad header check byte */
                stream[at + 6u + rnd() % 2u] ^= (uint8_t)(1u + rnd() % 255u);
            }
            item_end[n_items++] = n;
        }
        /* Flips always change a byte and CRC-32 catches 1..3 flipped bits at these
         * lengths, so a damaged frame never counts as intact. */
        bk_proto_parser_init(&parser);
        size_t pos = 0;
        unsigned next_item = 0;
        for (;;) {
            size_t chunk = 0;
            int quiet = 0; /* the link goes quiet after this chunk (between two items) */
            if (pos < n) {
                chunk = 1u + rnd() % 700u;
                if (chunk > n - pos) chunk = n - pos;
                while (next_item < n_items && item_end[next_item] <= pos) next_item++;
                if (next_item < n_items && item_end[next_item] <= pos + chunk && rnd() % 8u == 0u) {
                    chunk = item_end[next_item] - pos;
                    quiet = 1;
                }
            }
            bk_proto_event_t ev;
            size_t off = 0;
            for (;;) {
                const size_t used = bk_proto_feed(&parser, &stream[pos + off], chunk - off, &ev);
                off += used;
                if (parser.fill > BK_PROTO_MAX_FRAME || parser.pend > parser.pend_end ||
                    parser.pend_end > BK_PROTO_MAX_FRAME || (parser.pend < parser.pend_end && parser.fill > parser.pend))
                    return fail("parser indices out of bounds", r);
                if (ev.kind == BK_PROTO_NONE) {
                    if (off != chunk) return fail("no event but bytes left", r);
                    break;
                }
                total_errors += ev.kind != BK_PROTO_FRAME;
                if (ev.kind == BK_PROTO_FRAME) {
                    if (ev.len < 4u) continue; /* noise-made frames cannot be told apart */
                    const uint32_t id = bk_get_u32(ev.payload);
                    const unsigned idx = id & 1023u;
                    if ((id >> 10) != (r & 0x3FFFFFu) || idx >= n_sent) return fail("frame with a foreign id", r);
                    sent_t *s = &sent[idx];
                    if (!s->intact) continue; /* a damaged frame can still be whole if the cut fell past it */
                    if (s->type != ev.type || s->seq != ev.seq || s->len != ev.len)
                        return fail("frame header differs from what was sent", r);
                    if (s->got) return fail("frame delivered twice", r);
                    s->got = 1;
                }
            }
            pos += chunk;
            if (pos >= n) {
                /* end of stream: the link goes quiet until nothing is held */
                bk_proto_event_t tev;
                if (!bk_proto_timeout(&parser, &tev)) break;
                continue;
            }
            if (quiet) {
                bk_proto_event_t tev;
                total_errors += (uint64_t)bk_proto_timeout(&parser, &tev);
            }
        }
        unsigned intact = 0, got = 0;
        for (unsigned i = 0; i < n_sent; i++) {
            intact += (unsigned)sent[i].intact;
            got += (unsigned)(sent[i].intact && sent[i].got);
        }
        total_bytes += n;
        total_frames += n_sent;
        total_intact += intact;
        total_got += got;
    }
    printf("fuzz_protocol: %u rounds, %llu bytes, %llu frames (%llu intact), %llu recovered "
           "(%.4f%%), %llu error events\n",
           rounds, (unsigned long long)total_bytes, (unsigned long long)total_frames,
           (unsigned long long)total_intact, (unsigned long long)total_got,
           total_intact ? 100.0 * (double)total_got / (double)total_intact : 100.0,
           (unsigned long long)total_errors);
    /* Recovery below 99% would mean the rescan loses frames it should find. */
    if (total_intact && total_got * 100u < total_intact * 99u) return fail("too few intact frames recovered", rounds);
    return 0;
}
