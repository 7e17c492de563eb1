/* bnnkws firmware: keyword spotting on audio (or features) streamed over the UART. */
#include "app.h"
#include "board.h"
#include "frontend.h"

int main(void) {
    /* The front-end buffers hold BK_FE_MAX_FRAME samples: a model with longer frames
     * cannot run on this build (exit status 5 names it on QEMU). */
    if (bk_model_frontend.frame_len > BK_FE_MAX_FRAME) board_exit(5);
    board_init();
    kws_config_t cfg;
    kws_default_config(&cfg);
    (void)kws_set_config(&cfg);
    kws_reset();
    link_init();
    for (;;) link_poll();
}
