/* The device side of the serial protocol (docs/PROTOCOL.md): frames in through the
 * portable parser (protocol.c), requests handled in sequence order, replies out.
 *
 * Sequence rule: a request whose seq is the expected one is handled and answered with
 * ACK(seq) (or ERROR(seq) when it is invalid); one of the BK_PROTO_DUP_WINDOW seqs just
 * before it is a retransmission (its ACK was lost) and gets ACK(expected - 1) without
 * being handled again; any other seq gets NAK(OUT_OF_ORDER, expected). HELLO is handled
 * at any seq and restarts the numbering after it. A damaged frame gets a NAK that names
 * the expected seq, so the host resends from there (go-back-N).
 */
#include <string.h>

#include "app.h"
#include "board.h"
#include "crc32.h"
#include "protocol.h"

static bk_proto_parser_t parser;
static uint8_t expected_seq;
static uint8_t tx_seq;
static uint32_t last_rx_tick;

static void send_frame(uint8_t type, const uint8_t *payload, uint16_t len) {
    uint8_t head[BK_PROTO_HEADER], tail[BK_PROTO_TRAILER];
    bk_proto_header(head, type, tx_seq++, len);
    bk_put_u32(tail, bk_crc32(bk_crc32(0, head, sizeof head), payload, len));
    board_uart_write(head, sizeof head);
    board_uart_write(payload, len);
    board_uart_write(tail, sizeof tail);
}

static void send_ack(uint8_t seq) { send_frame(BK_MSG_ACK, &seq, 1); }

static void send_nak(uint8_t seq, uint8_t reason) {
    const uint8_t p[3] = {seq, reason, expected_seq};
    send_frame(BK_MSG_NAK, p, sizeof p);
}

static void send_error(uint8_t code, uint8_t seq, const char *text) {
    uint8_t p[2 + 80];
    size_t n = strlen(text);
    if (n > sizeof p - 2u) n = sizeof p - 2u;
    p[0] = code;
    p[1] = seq;
    memcpy(&p[2], text, n);
    send_frame(BK_MSG_ERROR, p, (uint16_t)(2u + n));
}

/* ---- replies ---------------------------------------------------------------------- */
static uint8_t hex_nibble(char c) {
    return (uint8_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
}

static size_t put_string(uint8_t *p, size_t room, const char *s) {
    size_t n = strlen(s) + 1u; /* with its NUL */
    if (n > room) return 0;
    memcpy(p, s, n);
    return n;
}

static void send_info(void) {
    uint8_t p[BK_PROTO_MAX_PAYLOAD];
    const bk_fe_params_t *fe = &bk_model_frontend;
    size_t n = 0;
    p[n++] = BK_PROTO_VERSION;
    p[n++] = (uint8_t)(1u + BOARD_RX_RING / BK_PROTO_MAX_FRAME); /* rx window */
    bk_put_u16(&p[n], BK_PROTO_MAX_PAYLOAD), n += 2;
    bk_put_u16(&p[n], fe->sample_rate), n += 2;
    bk_put_u16(&p[n], fe->frame_len), n += 2;
    bk_put_u16(&p[n], fe->hop), n += 2;
    p[n++] = (uint8_t)BK_MODEL_N_MELS;
    p[n++] = (uint8_t)BK_MODEL_N_FRAMES;
    bk_put_u16(&p[n], kws_config()->stride), n += 2;
    bk_put_u32(&p[n], BOARD_TICK_HZ), n += 4;
    for (unsigned i = 0; i < 8u; i++) /* first 8 bytes of the model hash */
        p[n++] = (uint8_t)(hex_nibble(BK_MODEL_HASH[2 * i]) << 4 | hex_nibble(BK_MODEL_HASH[2 * i + 1]));
    uint8_t *n_conv = &p[n++];
    *n_conv = 0;
    for (unsigned i = 0; i < BK_MODEL_N_LAYERS; i++) {
        if (bk_model.layers[i].kind != BK_LAYER_CONV) continue;
        p[n++] = bk_model.layers[i].acc_bits;
        (*n_conv)++;
    }
    p[n++] = (uint8_t)BK_MODEL_N_CLASSES;
    n += put_string(&p[n], sizeof p - n, BK_FIRMWARE_VERSION);
    n += put_string(&p[n], sizeof p - n, board_name());
    for (unsigned c = 0; c < BK_MODEL_N_CLASSES; c++) n += put_string(&p[n], sizeof p - n, bk_model.labels[c]);
    send_frame(BK_MSG_INFO, p, (uint16_t)n);
}

static void send_stats(void) {
    uint8_t p[4u * 24u + 1u + 4u * BK_MODEL_N_LAYERS];
    const kws_timing_t *t = kws_timing();
    board_rx_counts_t rx;
    board_rx_counts(&rx);
    const bk_proto_counts_t *c = &parser.counts;
    const uint32_t v[] = {
        BOARD_TICK_HZ, t->inferences, t->hops, t->infer_last, t->infer_min, t->infer_total,
        t->fe_last, t->fe_max, t->fe_total, t->det_last, rx.bytes, rx.pauses, rx.overruns,
        board_ticks(), board_idle_ticks(), c->frames, c->bad_header, c->bad_crc, c->oversize, c->truncated, c->noise,
    };
    size_t n = 0;
    for (unsigned i = 0; i < sizeof v / sizeof v[0]; i++, n += 4) bk_put_u32(&p[n], v[i]);
    p[n++] = (uint8_t)BK_MODEL_N_LAYERS;
    for (unsigned i = 0; i < BK_MODEL_N_LAYERS; i++, n += 4) bk_put_u32(&p[n], t->layer[i]);
    send_frame(BK_MSG_STATS, p, (uint16_t)n);
}

static void emit(const kws_output_t *out) {
    const uint8_t flags = kws_config()->flags;
    if (flags & BK_APP_SEND_RESULT) {
        uint8_t p[4u + 4u * BK_MODEL_N_CLASSES];
        bk_put_u32(p, out->frame);
        for (unsigned c = 0; c < BK_MODEL_N_CLASSES; c++) bk_put_u32(&p[4u + 4u * c], (uint32_t)out->scores[c]);
        send_frame(BK_MSG_RESULT, p, sizeof p);
    }
    if (out->detected && (flags & BK_APP_SEND_DETECTION)) {
        uint8_t p[8];
        bk_put_u32(p, out->detection.frame);
        p[4] = out->detection.label;
        p[5] = 0;
        bk_put_u16(&p[6], out->detection.posterior);
        send_frame(BK_MSG_DETECTION, p, sizeof p);
    }
}

/* ---- requests --------------------------------------------------------------------- */
/* CONFIG: u16 stride, u8 smooth, u8 temp_shift, u16 refractory, u8 flags, u8 n_thr,
 * u16 thr[n_thr]. Returns 0 when applied. */
static int apply_config(const uint8_t *p, uint16_t len) {
    if (len < 8u || len != 8u + 2u * p[7]) return 1;
    kws_config_t cfg = *kws_config();
    cfg.stride = bk_get_u16(&p[0]);
    cfg.det.smooth = p[2];
    cfg.det.temp_shift = p[3];
    cfg.det.refractory = bk_get_u16(&p[4]);
    cfg.flags = p[6];
    cfg.det.n_classes = p[7];
    if (cfg.det.n_classes > BK_DET_MAX_CLASSES) return 1;
    for (unsigned c = 0; c < cfg.det.n_classes; c++) cfg.det.thr[c] = bk_get_u16(&p[8u + 2u * c]);
    return kws_set_config(&cfg);
}

static void push_audio(const uint8_t *p, uint16_t len) {
    /* The parser keeps payloads word-aligned, and the wire is little-endian like the core. */
    kws_push_audio((const int16_t *)(const void *)p, len / 2u, emit);
}

static void handle(const bk_proto_event_t *ev) {
    const uint8_t seq = ev->seq;
    if (ev->type == BK_MSG_HELLO) {
        if (ev->len != 5u) {
            send_error(BK_ERR_BAD_PAYLOAD, seq, "HELLO needs u32 nonce, u8 version");
            return;
        }
        kws_reset();
        expected_seq = (uint8_t)(seq + 1u);
        uint8_t p[5];
        memcpy(p, ev->payload, 4);
        p[4] = BK_PROTO_VERSION;
        send_frame(BK_MSG_HELLO_REPLY, p, sizeof p);
        send_ack(seq);
        return;
    }
    const uint8_t behind = (uint8_t)(expected_seq - seq);
    if (behind != 0u) {
        if (behind <= BK_PROTO_DUP_WINDOW) send_ack((uint8_t)(expected_seq - 1u));
        else send_nak(seq, BK_ERR_OUT_OF_ORDER);
        return;
    }
    expected_seq++;
    switch (ev->type) {
    case BK_MSG_INFO_REQ:
        send_info();
        break;
    case BK_MSG_STATS_REQ:
        send_stats();
        break;
    case BK_MSG_CONFIG:
        if (apply_config(ev->payload, ev->len)) {
            send_error(BK_ERR_BAD_CONFIG, seq, "CONFIG out of range (stride, smooth 1..8, temp_shift 0..16, n_classes)");
            return;
        }
        break;
    case BK_MSG_RESET:
        kws_reset();
        break;
    case BK_MSG_SHUTDOWN:
        send_ack(seq);
        board_exit(0);
    case BK_MSG_AUDIO:
        if (ev->len == 0u || (ev->len & 1u)) {
            send_error(BK_ERR_BAD_PAYLOAD, seq, "AUDIO payload must be whole int16 samples");
            return;
        }
        push_audio(ev->payload, ev->len);
        break;
    case BK_MSG_FEATURES:
        if (ev->len == 0u || ev->len % BK_MODEL_N_MELS) {
            send_error(BK_ERR_BAD_PAYLOAD, seq, "FEATURES payload must be whole rows of n_mels int8");
            return;
        }
        for (uint16_t off = 0; off < ev->len; off += BK_MODEL_N_MELS)
            kws_push_features((const int8_t *)&ev->payload[off], emit);
        break;
    default:
        send_error(BK_ERR_UNKNOWN_TYPE, seq, "unknown message type");
        return;
    }
    send_ack(seq);
}

static void on_event(const bk_proto_event_t *ev) {
    switch (ev->kind) {
    case BK_PROTO_FRAME:
        handle(ev);
        break;
    case BK_PROTO_OVERSIZE:
        send_error(BK_ERR_OVERSIZE, ev->seq, "frame longer than the 512-byte payload limit");
        break;
    case BK_PROTO_BAD_HEADER:
        send_nak(0xFFu, BK_ERR_BAD_HEADER);
        break;
    case BK_PROTO_BAD_CRC:
        send_nak(ev->seq, BK_ERR_BAD_CRC);
        break;
    case BK_PROTO_TRUNCATED:
        send_nak(ev->header_ok ? ev->seq : 0xFFu, BK_ERR_TRUNCATED);
        break;
    default:
        break;
    }
}

void link_init(void) {
    bk_proto_parser_init(&parser);
    expected_seq = 0;
    tx_seq = 0;
    last_rx_tick = board_ticks();
    static const char version[] = "bnnkws " BK_FIRMWARE_VERSION;
    send_frame(BK_MSG_BOOT, (const uint8_t *)version, sizeof version - 1u);
}

void link_poll(void) {
    uint8_t chunk[64];
    const size_t n = board_uart_read(chunk, sizeof chunk);
    bk_proto_event_t ev;
    if (n) {
        last_rx_tick = board_ticks();
        size_t pos = 0;
        for (;;) {
            pos += bk_proto_feed(&parser, &chunk[pos], n - pos, &ev);
            if (ev.kind == BK_PROTO_NONE) break;
            on_event(&ev);
        }
        return;
    }
    if (bk_proto_busy(&parser)) {
        const uint32_t quiet = board_ticks() - last_rx_tick;
        if (quiet >= BK_APP_RX_TIMEOUT_TICKS) {
            if (bk_proto_timeout(&parser, &ev)) on_event(&ev);
            for (;;) { /* the rescan may hold whole frames */
                (void)bk_proto_feed(&parser, NULL, 0, &ev);
                if (ev.kind == BK_PROTO_NONE) break;
                on_event(&ev);
            }
            last_rx_tick = board_ticks();
            return;
        }
        board_wait(BK_APP_RX_TIMEOUT_TICKS - quiet);
        return;
    }
    board_wait(0);
}
