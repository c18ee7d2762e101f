// The board page: `size` contexts (board0, board1, ...), one panel each.
// Each panel is fetched once on load and subscribed to; an invalidation
// refetches it. Without versions the client cannot know which version a
// response was read at, so it refetches each panel after its subscription's
// first ack (SPEC 10). With versions (?versions=1) it subscribes with `since`
// = the response's X-Mizan-Version, and the hub says whether anything
// changed after it (SPEC 10.1): no refetch when nothing did.
//
// ./hub-client.js and ./hub-protocol.js are @mizan/hub-client's core and
// protocol bundles, copied here by ../../../run (build output).
import { connect } from "./hub-client.js";
import { versionFrom } from "./hub-protocol.js";

export function start({ hubUrl, size, versions }) {
  const hub = connect({ url: hubUrl, maxDelay: 5000 });
  const stats = { fetches: 0, acks: 0, size, versions };
  window.mizanHub = hub;
  window.board = stats; // read by tests/e2e/pageload.mjs
  hub.onFrame((f) => {
    if (f.subscribed && typeof f.context === "string" && f.context.startsWith("board")) stats.acks++;
  });
  const panels = document.getElementById("panels");
  for (let i = 0; i < size; i++) {
    const el = panels.appendChild(document.createElement("div"));
    const context = `board${i}`;
    const load = async () => {
      stats.fetches++;
      document.getElementById("fetches").textContent = String(stats.fetches);
      const response = await fetch(`/api/board/${i}/`, { headers: { Accept: "application/json" } });
      const data = await response.json();
      el.textContent = `${context}: ${data.todos} todos, ${data.done} done`;
      return response;
    };
    if (versions) {
      load().then((response) => hub.subscribe(context, {}, () => load(), { since: versionFrom(response)[context] }));
    } else {
      hub.subscribe(context, {}, () => load());
      load();
    }
  }
}
