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

/* Frames go out as they are produced, the CRC computed on the way: no transmit buffer. */
static uint32_t tx_crc;

static void tx_begin(uint8_t type, uint16_t len) {
    uint8_t head[BK_PROTO_HEADER];
    bk_proto_header(head, type, tx_seq++, len);
    tx_crc = bk_crc32(0, head, sizeof head);
    board_uart_write(head, sizeof head);
}

static void tx_put(const void *p, size_t n) {
    tx_crc = bk_crc32(tx_crc, p, n);
    board_uart_write((const uint8_t *)p, n);
}

static void tx_u8(uint8_t v) { tx_put(&v, 1); }

static void tx_u16(uint16_t v) {
    uint8_t b[2];
    bk_put_u16(b, v);
    tx_put(b, 2);
}

static void tx_u32(uint32_t v) {
    uint8_t b[4];
    bk_put_u32(b, v);
    tx_put(b, 4);
}

static void tx_end(void) {
    uint8_t tail[BK_PROTO_TRAILER];
    bk_put_u32(tail, tx_crc);
    board_uart_write(tail, sizeof tail);
}

static void send_frame(uint8_t type, const uint8_t *payload, uint16_t len) {
    tx_begin(type, len);
    tx_put(payload, len);
    tx_end();
}

static void send_ack(uint8_t seq) { send_frame(BK_MSG_ACK, &seq, 1); }

static void send_nak(uint8_t seq, uint8_t reason) {
    const uint8_t p[3] = {seq, reason, expected_seq};
    send_frame(BK_MSG_NAK, p, sizeof p);
}

static void send_error(uint8_t code, uint8_t seq, const char *text) {
    const size_t n = strlen(text);
    tx_begin(BK_MSG_ERROR, (uint16_t)(2u + n));
    tx_u8(code);
    tx_u8(seq);
    tx_put(text, n);
    tx_end();
}

/* ---- replies ---------------------------------------------------------------------- */
static uint8_t hex_nibble(char c) {
    return (uint8_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
}

static unsigned conv_layers(void) {
    unsigned n = 0;
    for (unsigned i = 0; i < BK_MODEL_N_LAYERS; i++) n += bk_model.layers[i].kind == BK_LAYER_CONV;
    return n;
}

/* INFO layout: docs/PROTOCOL.md (tools/device/protocol.py pack_info). */
static int send_info(uint8_t seq) {
    const bk_fe_params_t *fe = &bk_model_frontend;
    const char *text[2 + BK_MODEL_N_CLASSES];
    text[0] = BK_FIRMWARE_VERSION;
    text[1] = board_name();
    for (unsigned c = 0; c < BK_MODEL_N_CLASSES; c++) text[2 + c] = bk_model.labels[c];
    const unsigned n_conv = conv_layers();
    size_t len = 27u + n_conv + 1u;
    for (unsigned i = 0; i < 2u + BK_MODEL_N_CLASSES; i++) len += strlen(text[i]) + 1u;
    if (len > BK_PROTO_MAX_PAYLOAD) { /* labels too long for one frame: say so */
        send_error(BK_ERR_BAD_PAYLOAD, seq, "INFO does not fit one frame (labels too long)");
        return 1;
    }
    tx_begin(BK_MSG_INFO, (uint16_t)len);
    tx_u8(BK_PROTO_VERSION);
    tx_u8((uint8_t)(1u + BOARD_RX_RING / BK_PROTO_MAX_FRAME)); /* rx window */
    tx_u16(BK_PROTO_MAX_PAYLOAD);
    tx_u16(fe->sample_rate);
    tx_u16(fe->frame_len);
    tx_u16(fe->hop);
    tx_u8((uint8_t)BK_MODEL_N_MELS);
    tx_u8((uint8_t)BK_MODEL_N_FRAMES);
    tx_u16(kws_config()->stride);
    tx_u32(BOARD_TICK_HZ);
    for (unsigned i = 0; i < 8u; i++) /* first 8 bytes of the model hash */
        tx_u8((uint8_t)(hex_nibble(BK_MODEL_HASH[2 * i]) << 4 | hex_nibble(BK_MODEL_HASH[2 * i + 1])));
    tx_u8((uint8_t)n_conv);
    for (unsigned i = 0; i < BK_MODEL_N_LAYERS; i++)
        if (bk_model.layers[i].kind == BK_LAYER_CONV) tx_u8(bk_model.layers[i].acc_bits);
    tx_u8((uint8_t)BK_MODEL_N_CLASSES);
    for (unsigned i = 0; i < 2u + BK_MODEL_N_CLASSES; i++) tx_put(text[i], strlen(text[i]) + 1u);
    tx_end();
    return 0;
}

/* STATS layout: tools/device/protocol.py Stats (u32 fields in order, parser counts, layers). */
static void send_stats(void) {
    const kws_timing_t *t = kws_timing();
    board_rx_counts_t rx;
    board_rx_counts(&rx);
    const bk_proto_counts_t *c = &parser.counts;
    const uint32_t v[] = {
        BOARD_TICK_HZ, t->inferences, t->hops, t->infer_last, t->infer_min, t->infer_total,
        t->fe_last, t->fe_max, t->fe_total, t->det_last, rx.bytes, rx.pauses, rx.overruns,
        board_ticks(), board_idle_ticks(), board_stack_used(), board_stack_size(),
        c->frames, c->bad_header, c->bad_crc, c->oversize, c->truncated, c->noise,
    };
    const unsigned n_v = sizeof v / sizeof v[0];
    tx_begin(BK_MSG_STATS, (uint16_t)(4u * n_v + 1u + 4u * BK_MODEL_N_LAYERS));
    for (unsigned i = 0; i < n_v; i++) tx_u32(v[i]);
    tx_u8((uint8_t)BK_MODEL_N_LAYERS);
    for (unsigned i = 0; i < BK_MODEL_N_LAYERS; i++) tx_u32(t->layer[i]);
    tx_end();
}

static void emit(const kws_output_t *out) {
    const uint8_t flags = kws_config()->flags;
    if (flags & BK_APP_SEND_RESULT) {
        tx_begin(BK_MSG_RESULT, 4u + 4u * BK_MODEL_N_CLASSES);
        tx_u32(out->frame);
        for (unsigned c = 0; c < BK_MODEL_N_CLASSES; c++) tx_u32((uint32_t)out->scores[c]);
        tx_end();
    }
    if (out->detected && (flags & BK_APP_SEND_DETECTION)) {
        tx_begin(BK_MSG_DETECTION, 8u);
        tx_u32(out->detection.frame);
        tx_u8(out->detection.label);
        tx_u8(0);
        tx_u16(out->detection.posterior);
        tx_end();
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
        if (send_info(seq)) return;
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
    uint8_t chunk[128];
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
        /* sleep until the frame can be complete, looking again in 50 ms at most */
        board_wait(bk_proto_wanted(&parser), BK_APP_RX_TIMEOUT_TICKS / 4u);
        return;
    }
    board_wait(1, 0);
}
