/*
 * mh-jwt-verify: what verifying one connection token costs, alone (issue 13:
 * the connect storm's CPU per connection). Signs HS256 tokens like Mizan's
 * MWT and verifies them with mh_jwt_verify: N distinct tokens (a storm of
 * new users) and one token N times (a reconnect storm), CPU time per call.
 *   mh-jwt-verify [N]
 */
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mh_jwt.h"

static const char secret[] = "bench-secret-bench-secret-bench-secret!!";

static size_t b64url(const unsigned char *in, size_t n, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0, i;
    for (i = 0; i + 2 < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        out[o++] = t[v >> 18 & 63], out[o++] = t[v >> 12 & 63], out[o++] = t[v >> 6 & 63],
        out[o++] = t[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)in[i] << 16;
        out[o++] = t[v >> 18 & 63], out[o++] = t[v >> 12 & 63];
    } else if (n - i == 2) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
        out[o++] = t[v >> 18 & 63], out[o++] = t[v >> 12 & 63], out[o++] = t[v >> 6 & 63];
    }
    out[o] = '\0';
    return o;
}

static void sign(char *out, int user, long exp)
{
    char head[128], body[256], payload[256];
    unsigned char mac[32];
    unsigned maclen = 32;
    size_t n;
    const char *h = "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"v1\"}";

    snprintf(payload, sizeof payload,
             "{\"sub\":\"%d\",\"iat\":%ld,\"nbf\":%ld,\"exp\":%ld,\"aud\":\"mizan\","
             "\"staff\":false,\"super\":false}",
             user, exp - 300, exp - 300, exp);
    b64url((const unsigned char *)h, strlen(h), head);
    b64url((const unsigned char *)payload, strlen(payload), body);
    n = (size_t)sprintf(out, "%s.%s", head, body);
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)out, n, mac, &maclen);
    out[n++] = '.';
    b64url(mac, 32, out + n);
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 100000;
    mh_jwt_keys keys = {0};
    mh_jwt_policy pol = {.audience = "mizan", .issuer = NULL, .leeway = 30};
    char err[256];
    long now = (long)time(NULL);
    char(*toks)[512] = malloc((size_t)n * sizeof *toks);
    mh_identity id;
    const char *reason;
    double t0;

    if (mh_jwt_keys_add(&keys, "v1", "HS256", secret, strlen(secret), err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    for (int i = 0; i < n; i++)
        sign(toks[i], i, now + 300);
    t0 = cpu_s();
    for (int i = 0; i < n; i++)
        if (mh_jwt_verify(&keys, &pol, toks[i], strlen(toks[i]), now, &id, &reason)) {
            fprintf(stderr, "refused: %s\n", reason);
            return 1;
        }
    printf("distinct tokens: %d verified, %.2f us CPU each\n", n, (cpu_s() - t0) / n * 1e6);
    t0 = cpu_s();
    for (int i = 0; i < n; i++)
        mh_jwt_verify(&keys, &pol, toks[0], strlen(toks[0]), now, &id, &reason);
    printf("one token again: %d verified, %.2f us CPU each\n", n, (cpu_s() - t0) / n * 1e6);
    free(toks);
    mh_jwt_keys_free(&keys);
    return 0;
}
