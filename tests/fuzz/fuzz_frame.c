/*
 * libFuzzer: browser frames, the hub's most exposed parser. A decoded frame
 * dumps to JSON that decodes again to the same normalized frame.
 */
#include "fuzz_check.h"
#include <stdint.h>
#include <string.h>

#include "mh_frame.h"
#include "mh_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mh_frame f, g;
    mh_err err;
    mh_buf b, b2;

    mh_err_clear(&err);
    if (mh_frame_decode((const char *)data, size, &f, &err)) {
        CHECK(err.code < 0 && err.msg[0]);
        mh_frame_free(&f);
        return 0;
    }
    mh_buf_init(&b);
    mh_buf_init(&b2);
    CHECK(mh_frame_dump(&b, &f) == 0);
    CHECK(mh_frame_decode(b.data, b.len, &g, &err) == 0);
    CHECK(mh_frame_dump(&b2, &g) == 0);
    CHECK(b.len == b2.len && !memcmp(b.data, b2.data, b.len));
    mh_frame_free(&g);
    mh_frame_free(&f);
    mh_buf_free(&b);
    mh_buf_free(&b2);
    return 0;
}
