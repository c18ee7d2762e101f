/*
 * libFuzzer: browser WebSocket frames as the hub's own sockets read them
 * (mh_wsframe). A stream is parsed frame by frame; every accepted header
 * is consistent with its bytes, every refusal names a close code.
 */
#include "fuzz_check.h"
#include <stdint.h>
#include <string.h>

#include "mh_wsframe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    unsigned char payload[256];

    while (off < size) {
        mh_ws_frame f;
        mh_ws_fault flt = {0, NULL};
        int rc = mh_ws_parse(data + off, size - off, 4096, &f, &flt);
        if (rc < 0) {
            CHECK((flt.code == 1002 || flt.code == 1009) && flt.why);
            return 0;
        }
        if (rc == 0)
            return 0;
        CHECK(f.head_len >= 6 && f.head_len <= 14 && f.len <= 4096);
        if (f.opcode >= MH_WS_CLOSE)
            CHECK(f.fin && f.len <= MH_WS_CONTROL_MAX);
        if (f.len > size - off - f.head_len)
            return 0;
        if (f.opcode == MH_WS_CLOSE) {
            uint16_t code = 0;
            memcpy(payload, data + off + f.head_len, (size_t)f.len);
            mh_ws_unmask(payload, (size_t)f.len, f.mask, 0);
            payload[f.len] = 0;
            if (mh_ws_close_parse(payload, (size_t)f.len, &code, &flt) == 0) {
                unsigned char out[MH_WS_CONTROL_MAX];
                size_t n = mh_ws_close_payload(out, code, (const char *)payload + 2);
                CHECK(n >= 2 && n <= MH_WS_CONTROL_MAX);
            } else {
                CHECK(flt.code == 1002 || flt.code == 1007);
            }
        }
        off += f.head_len + (size_t)f.len;
    }
    return 0;
}
