/*
 * mh_rpc — rpc and ctx calls waiting for Django's reply.
 *
 * Each connection keeps the ids it waits for; the hub keeps one FIFO of
 * deadlines. The timeout is the same for every call, so arrival order is
 * deadline order and expiring is a walk from the head.
 */
#ifndef MH_RPC_H
#define MH_RPC_H

#include <stdbool.h>

#include "mh_conn.h"

/** Starts waiting for the reply to rpc 'id_json' (the id as compact JSON). */
int mh_rpc_start(mh_conn *c, const char *id_json);

/** Ends the wait for 'id_json'. Returns true if it was pending. */
bool mh_rpc_finish(mh_conn *c, const char *id_json);

/** Forgets every wait of a closing connection. */
void mh_rpc_forget_conn(mh_conn *c);

/** Answers every call past its deadline with a TIMEOUT error. */
void mh_rpc_expire(mh_hub *h);

/** Frees the FIFO (shutdown). */
void mh_rpc_free_all(mh_hub *h);

/** Sends {"id":ID,"ok":false,"error":{"code":CODE,"message":MSG}} to 'c'. */
void mh_rpc_send_error(mh_conn *c, const char *id_json, const char *code, const char *msg);

#endif
