#include "mh_wsframe.h"

#include <string.h>

#include "mh_value.h"

size_t mh_ws_header(unsigned char out[MH_WS_HEADER_MAX], int opcode, uint64_t payload_len)
{
    out[0] = (unsigned char)(0x80 | (opcode & 0x0f));
    if (payload_len < 126) {
        out[1] = (unsigned char)payload_len;
        return 2;
    }
    if (payload_len < 65536) {
        out[1] = 126;
        out[2] = (unsigned char)(payload_len >> 8);
        out[3] = (unsigned char)payload_len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (unsigned char)(payload_len >> (56 - 8 * i));
    return 10;
}

static int fault(mh_ws_fault *f, uint16_t code, const char *why)
{
    f->code = code;
    f->why = why;
    return -1;
}

int mh_ws_parse(const unsigned char *buf, size_t len, uint64_t max_payload, mh_ws_frame *f,
                mh_ws_fault *flt)
{
    size_t need = 2;
    uint64_t plen;

    if (len < 2)
        return 0;
    if (buf[0] & 0x70)
        return fault(flt, 1002, "reserved bits set (no extension was agreed)");
    f->fin = (buf[0] & 0x80) != 0;
    f->opcode = buf[0] & 0x0f;
    switch (f->opcode) {
    case MH_WS_CONT:
    case MH_WS_TEXT:
    case MH_WS_BINARY:
        break;
    case MH_WS_CLOSE:
    case MH_WS_PING:
    case MH_WS_PONG:
        if (!f->fin)
            return fault(flt, 1002, "fragmented control frame");
        if ((buf[1] & 0x7f) > MH_WS_CONTROL_MAX)
            return fault(flt, 1002, "control frame over 125 bytes");
        break;
    default:
        return fault(flt, 1002, "reserved opcode");
    }
    if (!(buf[1] & 0x80))
        return fault(flt, 1002, "unmasked frame from a client");
    plen = buf[1] & 0x7f;
    if (plen == 126)
        need += 2;
    else if (plen == 127)
        need += 8;
    if (len < need + 4)
        return 0;
    if (plen == 126) {
        plen = (uint64_t)buf[2] << 8 | buf[3];
    } else if (plen == 127) {
        plen = 0;
        for (int i = 0; i < 8; i++)
            plen = plen << 8 | buf[2 + i];
        if (plen >> 63)
            return fault(flt, 1002, "payload length with its top bit set");
    }
    if (plen > max_payload)
        return fault(flt, 1009, "frame too large");
    memcpy(f->mask, buf + need, 4);
    f->len = plen;
    f->head_len = need + 4;
    return 1;
}

void mh_ws_unmask(unsigned char *p, size_t n, const unsigned char mask[4], uint64_t offset)
{
    for (size_t i = 0; i < n; i++)
        p[i] ^= mask[(offset + i) & 3];
}

/* RFC 6455 7.4.1/7.4.2: the codes a peer may put on the wire. */
static bool close_code_ok(uint16_t c)
{
    if (c >= 3000 && c <= 4999)
        return true;
    return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1011);
}

int mh_ws_close_parse(const unsigned char *p, size_t n, uint16_t *code, mh_ws_fault *flt)
{
    if (n == 0) {
        *code = 1005;
        return 0;
    }
    if (n == 1)
        return fault(flt, 1002, "close frame with a 1-byte payload");
    *code = (uint16_t)(p[0] << 8 | p[1]);
    if (!close_code_ok(*code))
        return fault(flt, 1002, "close code not allowed on the wire");
    if (!mh_utf8_valid((const char *)p + 2, n - 2))
        return fault(flt, 1007, "close reason is not UTF-8");
    return 0;
}

size_t mh_ws_close_payload(unsigned char out[MH_WS_CONTROL_MAX], uint16_t code, const char *reason)
{
    size_t n = reason ? strlen(reason) : 0;

    if (n > MH_WS_CONTROL_MAX - 2) {
        n = MH_WS_CONTROL_MAX - 2;
        while (n && ((unsigned char)reason[n] & 0xc0) == 0x80)
            n--; /* never end inside a UTF-8 sequence */
    }
    out[0] = (unsigned char)(code >> 8);
    out[1] = (unsigned char)code;
    if (n)
        memcpy(out + 2, reason, n);
    return n + 2;
}
