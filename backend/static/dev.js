// The demo page: every call goes to this origin with the token in the
// Authorization header; data reaches the page only through textContent.
"use strict";

const TOKEN_KEY = "todo-backend-dev-token";
const $ = (id) => document.getElementById(id);
let user = null;

class Problem extends Error {
  constructor(status, body) {
    super(body?.detail ?? `HTTP ${status}`);
    this.status = status;
    this.body = body ?? {};
  }
}

async function api(method, path, body) {
  const headers = {Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY)}`};
  const init = {method, headers, credentials: "omit", cache: "no-store"};
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = {detail: text};
  }
  if (!response.ok) throw new Problem(response.status, data);
  return {data, total: response.headers.get("X-Total-Count")};
}

function tasksPath(suffix = "") {
  return `/api/${encodeURIComponent(user)}/tasks${suffix}`;
}

// Runs one user action: clears the last problem, marks the list busy, shows what failed.
async function run(action) {
  $("problem").hidden = true;
  $("tasks").setAttribute("aria-busy", "true");
  try {
    await action();
  } catch (error) {
    showProblem(error);
  } finally {
    $("tasks").setAttribute("aria-busy", "false");
  }
}

function showProblem(error) {
  const body = error instanceof Problem ? error.body : {title: "Cannot reach the backend", detail: String(error)};
  $("problem-title").textContent = body.title ?? "Request failed";
  $("problem-status").textContent = error instanceof Problem ? `HTTP ${error.status}` : "";
  $("problem-code").textContent = body.code ?? "";
  $("problem-detail").textContent = body.detail ?? "";
  const list = $("problem-errors");
  list.replaceChildren(...(body.errors ?? []).map((item) => listItem(`${item.field}: ${item.message}`)));
  $("problem").hidden = false;
}

function listItem(text) {
  const item = document.createElement("li");
  item.textContent = text;
  return item;
}

async function connect() {
  const me = (await api("GET", "/api/me")).data;
  user = me.user_id;
  $("user").textContent = me.email ? `${me.user_id} (${me.email})` : me.user_id;
  $("tasks").hidden = false;
  await refresh();
}

async function refresh() {
  const {data: tasks, total} = await api("GET", tasksPath("?limit=200"));
  $("list").replaceChildren(...tasks.map(taskItem));
  const shown = tasks.length === Number(total) ? `${total}` : `${tasks.length} of ${total}`;
  $("count").textContent = `${shown} task${total === "1" ? "" : "s"}`;
}

function taskItem(task) {
  const item = document.createElement("li");
  item.dataset.id = task.id;
  item.classList.toggle("done", task.completed);
  const box = document.createElement("input");
  box.type = "checkbox";
  box.checked = task.completed;
  box.setAttribute("aria-label", "Completed");
  // Sets the state rather than toggling it: a repeated click cannot flip it back.
  box.addEventListener("change", () => run(async () => {
    await api("PATCH", tasksPath(`/${task.id}/complete`), {completed: box.checked});
    await refresh();
  }));
  const title = document.createElement("span");
  title.className = "title";
  title.textContent = task.title;
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "delete";
  remove.textContent = "Delete";
  remove.addEventListener("click", () => run(async () => {
    await api("DELETE", tasksPath(`/${task.id}`));
    await refresh();
  }));
  item.append(box, " ", title, " ", remove);
  return item;
}

function forget() {
  sessionStorage.removeItem(TOKEN_KEY);
  user = null;
  $("token").value = "";
  $("tasks").hidden = true;
  $("problem").hidden = true;
  $("list").replaceChildren();
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
  run(connect);
});

$("add-form").addEventListener("submit", (event) => {
  event.preventDefault();
  run(async () => {
    await api("POST", tasksPath(), {title: $("title").value});
    $("title").value = "";
    await refresh();
  });
});

$("forget").addEventListener("click", forget);

if (sessionStorage.getItem(TOKEN_KEY)) {
  $("token").value = sessionStorage.getItem(TOKEN_KEY);
  run(connect);
}
