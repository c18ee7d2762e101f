/*
 * mh_out — encoders of the frames the hub sends (SPEC section 8). Each
 * appends compact JSON to a buffer; shared frames are then wrapped once in
 * an mh_msg and queued by reference.
 */
#ifndef MH_OUT_H
#define MH_OUT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "mh_buf.h"
#include "mh_envelope.h"
#include "mh_inval.h"

typedef struct mh_conn mh_conn;

void mh_out_welcome(mh_buf *b, const mh_conn *c, int spread_ms, int max_frame);

/**
 * {"invalidate":[entry],"versions":{ctx:version},...}: 'version' may be
 * NULL (no versions key), 'reason' NULL, 'spread_ms' < 0 and 'ts' <= 0 omit
 * their keys.
 */
void mh_out_invalidate(mh_buf *b, const mh_entry *e, const char *version, const char *reason,
                       int spread_ms, double ts);

/** {"subscribed":true,"context":..,"params":..,"version":..} (or "unsubscribed"). */
void mh_out_ack(mh_buf *b, bool subscribed, bool channel, const mh_entry *e, const char *version,
                const char *epoch, uint64_t seq, const json_t *ref);

/** {"error":{"code","message"},"ref"?,"context"|"channel"?,"params"?}. */
void mh_out_error(mh_buf *b, const char *code, const char *message, const json_t *ref,
                  int target /* 0 none, 1 context, 2 channel */, const mh_entry *e);

/**
 * {"unsubscribed":true,"context"|"channel":..,"params":..,"error":{"code","message"}}:
 * the hub ended a subscription the connection may no longer hold (SPEC 8).
 */
void mh_out_ended(mh_buf *b, bool channel, const mh_entry *e, const char *code,
                  const char *message);

void mh_out_gap(mh_buf *b, const mh_entry *channel, uint64_t from, uint64_t to, bool recovered,
                const char *reason);

/** A channel message frame from a message envelope. */
int mh_out_channel_message(mh_buf *b, const mh_envelope *env);

void mh_out_pong(mh_buf *b, const json_t *ref);

#endif
