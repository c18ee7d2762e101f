// The demo page: renders /api/todos/, sends mutations, and refetches when
// the hub says "todos" changed (or when a mutation response says so, which
// is how the tab that made the change learns it first, as in Mizan).
import { createHubClient } from "./hub-lite.js";

const $ = (id) => document.getElementById(id);
const csrf = () => (document.cookie.match(/(?:^|; )csrftoken=([^;]*)/) || [])[1] || "";

function log(text) {
  const line = `${new Date().toISOString().slice(11, 23)} ${text}\n`;
  $("log").textContent = (line + $("log").textContent).slice(0, 4000);
}

async function refetch(reason) {
  const started = performance.now();
  const response = await fetch("/api/todos/", { headers: { Accept: "application/json" } });
  const { todos } = await response.json();
  render(todos);
  log(`refetched (${reason}) in ${Math.round(performance.now() - started)} ms`);
}

function render(todos) {
  const list = $("todos");
  list.replaceChildren(...todos.map((todo) => {
    const li = document.createElement("li");
    li.className = todo.done ? "done" : "";
    const box = Object.assign(document.createElement("input"), { type: "checkbox", checked: todo.done });
    box.onchange = () => mutate(`/api/todos/${todo.id}/toggle/`);
    const title = Object.assign(document.createElement("span"), { textContent: ` ${todo.title}` });
    const del = Object.assign(document.createElement("button"), { className: "del", textContent: "×", title: "delete" });
    del.onclick = () => mutate(`/api/todos/${todo.id}/delete/`);
    li.append(box, title, del);
    return li;
  }));
}

async function mutate(url, body = {}) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
    body: JSON.stringify(body),
  });
  const payload = await response.json();
  if (Array.isArray(payload.invalidate) && payload.invalidate.length) refetch("own mutation");
}

export function start({ hubUrl }) {
  $("add").onsubmit = (event) => {
    event.preventDefault();
    const input = event.target.elements.title;
    mutate("/api/todos/add/", { title: input.value });
    input.value = "";
  };
  const hub = createHubClient({ url: hubUrl, onStatus: (s) => ($("status").textContent = s), log });
  hub.subscribe("todos", {}, (entry, frame) => {
    const ts = frame.ts ? ` ${Math.round(Date.now() - frame.ts)} ms after publish` : "";
    $("last").textContent = `${new Date().toLocaleTimeString()}${ts}`;
    refetch(`hub${frame.reason ? " " + frame.reason : ""}`);
  });
  refetch("page load");
}
