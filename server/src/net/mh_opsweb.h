/*
 * mh_opsweb — the operator page over HTTP: GET /ops/ (one HTML file with its
 * script, server/ops/index.html, compiled into the binary) and the JSON it
 * polls under /ops/api/ (route/mh_ops builds the answers).
 *
 * Served on the admin listener (--admin-listen); on the public port only
 * with --ops-public (everything the page shows, and starting traces, is then
 * open to anyone who reaches the port).
 */
#ifndef MH_OPSWEB_H
#define MH_OPSWEB_H

#include <stdbool.h>

#include "mh_buf.h"
#include "mh_hub.h"

struct lws;

/**
 * Answers 'path' when it is the page or one of its endpoints: fills
 * *status, *ctype (static) and 'body', and returns true. Returns false for
 * any other path (then nothing was written). Query arguments are read from
 * 'wsi'.
 */
bool mh_opsweb_answer(mh_hub *h, struct lws *wsi, const char *path, int *status, const char **ctype,
                      mh_buf *body);

#endif
