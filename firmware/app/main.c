/* bnnkws firmware: keyword spotting on audio (or features) streamed over the UART. */
#include "app.h"
#include "board.h"

int main(void) {
    board_init();
    kws_config_t cfg;
    kws_default_config(&cfg);
    (void)kws_set_config(&cfg);
    kws_reset();
    link_init();
    for (;;) link_poll();
}
