// NOT USED: the demo page now loads the real client, @mizan/hub-client
// (./hub-client.js, copied from client-js by ../../../run). This file stays
// only until django/tests/test_demo.py stops fetching it; then delete it.
//
// hub-lite.js -- a deliberately small stand-in for @mizan/hub-client, the
// browser client of mizan-hub (client-js/ in the repository), until that
// package is published. It speaks SPEC.md sections 6-10 just enough for the
// demo: open a WebSocket, subscribe to contexts, call listeners when an
// {"invalidate": [...]} frame matches, reconnect with jittered backoff and
// resume each subscription with `since` (its last version), so nothing
// missed while disconnected goes unnoticed. It does no auth, no channels, no
// rpc. The interface -- createHubClient({url}) and
// client.subscribe(context, params, listener) returning an unsubscribe
// function -- is the part to keep when swapping in the real client.

const NO_RECONNECT = new Set([4001, 4003, 4005]); // SPEC section 9

// String forms of param values (SPEC section 1) for the common cases.
const str = (v) => (v === null ? "null" : String(v));

function keyOf(context, params) {
  const names = Object.keys(params).sort(); // demo-grade; the real client sorts by UTF-8 bytes
  return JSON.stringify([context, names.map((n) => [n, str(params[n])])]);
}

// SPEC section 4: unscoped (or {}-scoped) entries match every subscription
// of the context; a scoped one when every param it names is equal.
function matches(entry, sub) {
  if (typeof entry === "string") return entry === sub.context;
  if (entry.context !== sub.context) return false;
  return Object.entries(entry.params || {}).every(([k, v]) => k in sub.params && str(sub.params[k]) === str(v));
}

export function createHubClient({ url, onStatus = () => {}, log = () => {} }) {
  const subs = new Map();
  let ws = null;
  let ref = 0;
  let retry = 0;
  let spreadMs = 0;
  let closed = false;

  const send = (frame) => {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(frame));
  };

  const subscribeFrame = (sub) => {
    const frame = { action: "subscribe", context: sub.context, params: sub.params, ref: ++ref };
    if (sub.version) frame.since = sub.version; // resume: the hub invalidates what we missed
    return frame;
  };

  function handle(frame) {
    if (frame.welcome) {
      retry = 0;
      spreadMs = frame.welcome.spread_ms || 0;
      onStatus(`connected (hub ${frame.welcome.hub})`);
      for (const sub of subs.values()) send(subscribeFrame(sub));
    } else if (frame.subscribed && frame.context) {
      const sub = subs.get(keyOf(frame.context, frame.params || {}));
      if (sub && frame.version) sub.version = frame.version;
      log(`subscribed to ${frame.context} at ${frame.version}`);
    } else if (Array.isArray(frame.invalidate)) {
      for (const entry of frame.invalidate) {
        const context = typeof entry === "string" ? entry : entry.context;
        for (const sub of subs.values()) {
          if (!matches(entry, sub)) continue;
          if (frame.versions && frame.versions[context]) sub.version = frame.versions[context];
          // Spread refetches so that many tabs do not hit Django at once.
          const spread = frame.spread_ms ?? spreadMs;
          setTimeout(() => sub.listeners.forEach((fn) => fn(entry, frame)), Math.random() * spread);
        }
      }
    } else if (frame.error) {
      log(`hub error: ${JSON.stringify(frame.error)}`);
    }
  }

  function connect() {
    onStatus("connecting");
    ws = new WebSocket(url);
    ws.onmessage = (event) => {
      let frame;
      try { frame = JSON.parse(event.data); } catch { return; }
      handle(frame);
    };
    ws.onclose = (event) => {
      onStatus(`disconnected (${event.code}${event.reason ? ": " + event.reason : ""})`);
      if (closed || NO_RECONNECT.has(event.code)) return;
      const delay = Math.min(10000, 250 * 2 ** retry++) * (0.5 + Math.random() / 2);
      setTimeout(connect, delay);
    };
  }

  connect();

  return {
    subscribe(context, params, listener) {
      const key = keyOf(context, params || {});
      let sub = subs.get(key);
      if (!sub) {
        sub = { context, params: params || {}, version: null, listeners: new Set() };
        subs.set(key, sub);
        send(subscribeFrame(sub));
      }
      sub.listeners.add(listener);
      return () => {
        sub.listeners.delete(listener);
        if (sub.listeners.size === 0) {
          subs.delete(key);
          send({ action: "unsubscribe", context, params: sub.params });
        }
      };
    },
    close() {
      closed = true;
      if (ws) ws.close(1000);
    },
  };
}
