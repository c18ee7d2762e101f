#include "mh_gate.h"

#include "mh_auth.h"
#include "mh_peer.h"

/* Judges an upgrade, wherever its head was read: 0 go on, 1 refused ('why'). */
int mh_gate_judge(mh_hub *h, mh_conn *c, const mh_upgrade_view *v, mh_upgrade_refusal *why)
{
    if (c->peer && c->peer->admin)
        return mh_auth_refuse(h, why, 404, "upgrade", "admin_listener",
                              "no WebSocket on the admin listener");
    if (h->draining)
        return mh_auth_refuse(h, why, 503, "limit", "draining", "the hub is restarting");
    return mh_auth_filter(h, c, v, why);
}
