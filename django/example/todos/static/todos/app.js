// The demo page: renders /api/todos/, sends mutations, and refetches when
// "todos" is invalidated -- by the hub (another tab, process or worker
// changed it), or by this tab's own mutation response, which goes through
// the same subscription (hub.invalidate), as in Mizan.
//
// ./hub-client.js is @mizan/hub-client's core bundle (client-js/, built with
// `npm run bundle`), and ./hub-protocol.js its protocol bundle (for
// versionFrom), copied here by ../../../run at start: build output, not
// committed.
import { connect } from "./hub-client.js";
import { versionFrom } from "./hub-protocol.js";

const $ = (id) => document.getElementById(id);
const csrf = () => (document.cookie.match(/(?:^|; )csrftoken=([^;]*)/) || [])[1] || "";

function log(text) {
  const line = `${new Date().toISOString().slice(11, 23)} ${text}\n`;
  $("log").textContent = (line + $("log").textContent).slice(0, 4000);
}

let fetches = 0;
/** Fetches and renders the list; returns the version of "todos" it was read at (X-Mizan-Version). */
async function refetch(reason) {
  const started = performance.now();
  const mine = ++fetches;
  try {
    const response = await fetch("/api/todos/", { headers: { Accept: "application/json" } });
    const { todos } = await response.json();
    if (mine !== fetches) return; // a later refetch started meanwhile: it wins
    render(todos);
    log(`refetched (${reason}) in ${Math.round(performance.now() - started)} ms`);
    return versionFrom(response).todos;
  } catch (e) {
    log(`refetch (${reason}) failed: ${e}`);
  }
}

function render(todos) {
  const list = $("todos");
  list.replaceChildren(...todos.map((todo) => {
    const li = document.createElement("li");
    li.className = todo.done ? "done" : "";
    li.dataset.id = todo.id;
    const box = Object.assign(document.createElement("input"), { type: "checkbox", checked: todo.done });
    box.onchange = () => mutate(`/api/todos/${todo.id}/toggle/`);
    const title = Object.assign(document.createElement("span"), { textContent: ` ${todo.title}` });
    const del = Object.assign(document.createElement("button"), { className: "del", textContent: "×", title: "delete" });
    del.onclick = () => mutate(`/api/todos/${todo.id}/delete/`);
    li.append(box, title, del);
    return li;
  }));
}

function showState(hub, state, reason) {
  const el = $("status");
  el.dataset.state = state;
  el.dataset.transport = hub.transport; // "sse" after the client fell back to Server-Sent Events
  let text = state;
  if (state === "open" && hub.welcome)
    text += ` (hub ${hub.welcome.hub}, connection ${hub.welcome.conn}${hub.transport === "sse" ? ", over Server-Sent Events" : ""})`;
  else if (reason) text += ` (last close ${reason.code}${reason.reason ? ": " + reason.reason : ""})`;
  el.textContent = text;
  log(`hub: ${text}`);
}

export function start({ hubUrl }) {
  // The demo caps the reconnect backoff at 5 s (the default is 30 s) so that
  // a restarted hub is found quickly; everything else is the default.
  const hub = connect({ url: hubUrl, maxDelay: 5000 });
  window.mizanHub = hub; // for the console (and tests/e2e)

  async function mutate(url, body = {}) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
      body: JSON.stringify(body),
    });
    const payload = await response.json();
    if (!response.ok) return log(`${url}: ${response.status} ${JSON.stringify(payload)}`);
    // {"result": ..., "invalidate": ["todos"]}: this tab's subscribers
    // refetch at once, without waiting for the hub (which may be down).
    hub.invalidate(payload);
  }

  $("add").onsubmit = (event) => {
    event.preventDefault();
    const input = event.target.elements.title;
    mutate("/api/todos/add/", { title: input.value });
    input.value = "";
  };

  showState(hub, hub.state, hub.reason);
  hub.onState((state, reason) => showState(hub, state, reason));
  hub.onError((e) => log(`hub error: ${JSON.stringify(e)}`));

  hub.onFrame((frame) => {
    if (frame.invalidate && frame.ts) {
      $("last").textContent = `${new Date().toLocaleTimeString()}, ${Math.round(Date.now() - frame.ts)} ms after publish` +
        (frame.reason ? ` (${frame.reason})` : "");
    } else if (frame.invalidate) {
      $("last").textContent = `${new Date().toLocaleTimeString()}${frame.reason ? ` (${frame.reason})` : ""}`;
    }
    if (frame.subscribed && frame.context === "todos") {
      log(`subscribed to todos at ${frame.version}`);
      $("todos").dataset.subscribed = "true"; // for tests/e2e
    }
  });

  // SPEC 10.1: the page-load fetch says which version of "todos" it read
  // (X-Mizan-Version); subscribing with it as `since`, the hub invalidates
  // only if "todos" changed after that read, so no refetch after the first
  // ack (without a version the client would make one: reason "ack").
  refetch("page load").then((since) =>
    hub.subscribe("todos", {}, (event) => {
      // reason: "resume" or "gap" when the hub healed a gap ("ack": the
      // page-load fetch had no version); delay: the refetch spread the
      // client waited (0 for this tab's own mutations).
      const why = event.reason ? `hub: ${event.reason}` : "invalidated";
      refetch(event.delay ? `${why}, after ${Math.round(event.delay)} ms spread` : why);
    }, { since }),
  );
}
