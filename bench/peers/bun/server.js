// Bun peer for bench/run (issue 8): Bun.serve WebSocket pub/sub fed by Redis.
// A client subscribes with the hub's frame {"action":"subscribe","context":C,"params":{...}};
// it joins topic C, or C:K when params.k is set, and gets {"subscribed":true}.
// Every PUBLISH on the Redis channel (an invalidate envelope, SPEC section 11)
// goes to the topics it names, as the same text (so it keeps the publisher's ts).
//   bun server.js PORT REDIS_URL CHANNEL
import { RedisClient } from "bun";

const [port, redisUrl, channel] = process.argv.slice(2);

function topicOf(entry) {
  if (typeof entry === "string") return entry;
  const k = entry.params && entry.params.k;
  return k === undefined ? entry.context : `${entry.context}:${k}`;
}

const server = Bun.serve({
  hostname: "127.0.0.1",
  port: Number(port),
  reusePort: true, // several bun processes may share the port (bench/run --workers)
  fetch(req, srv) {
    if (srv.upgrade(req)) return;
    return new Response("ok\n");
  },
  websocket: {
    idleTimeout: 0,
    maxPayloadLength: 64 * 1024,
    message(ws, text) {
      let m;
      try {
        m = JSON.parse(text);
      } catch {
        ws.send('{"type":"error","error":"bad json"}');
        return;
      }
      if (m.action !== "subscribe") return;
      ws.subscribe(topicOf(m));
      ws.send('{"type":"subscribed","subscribed":true}');
    },
  },
});

const sub = new RedisClient(redisUrl);
await sub.connect();
await sub.subscribe(channel, (message) => {
  let ev;
  try {
    ev = JSON.parse(message);
  } catch {
    return;
  }
  for (const entry of ev.invalidate || []) server.publish(topicOf(entry), message);
});
console.error(`bun peer on 127.0.0.1:${server.port}, Redis ${channel}`);
