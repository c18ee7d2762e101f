/*
 * libFuzzer: Redis envelopes. Trusted publishers can still be buggy; a bad
 * envelope must end in an error code, never a crash.
 */
#include "fuzz_check.h"
#include <stdint.h>

#include "mh_envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mh_envelope env;
    mh_err err;
    json_t *j;

    mh_err_clear(&err);
    if (mh_envelope_decode((const char *)data, size, &env, &err)) {
        CHECK(err.code < 0 && err.msg[0]);
    } else {
        j = mh_envelope_to_json(&env);
        CHECK(j);
        json_decref(j);
    }
    mh_envelope_free(&env);
    return 0;
}
