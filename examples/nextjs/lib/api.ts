// The task calls of client components: each gets the signed-in user's JWT from
// Better Auth (GET /api/auth/token, with the session cookie) and keeps it until
// shortly before it expires (15 minutes).
import { authClient } from "@/lib/auth-client";
import { callApi, tasksPath, type Task } from "@/lib/tasks";

let cached: { token: string; sub: string; expires: number } | null = null;

async function bearer(userId: string): Promise<string> {
  // Keyed by user: after a sign-out and another user's sign-in in the same tab,
  // the previous user's token must not be sent.
  if (cached?.sub === userId && cached.expires - Date.now() > 30_000) return cached.token;
  const { data, error } = await authClient.token();
  if (!data) throw new Error(`Not signed in (${error.status} ${error.statusText})`);
  const claims = JSON.parse(atob(data.token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
  cached = { token: data.token, sub: claims.sub, expires: claims.exp * 1000 };
  return data.token;
}

async function api<T>(userId: string, path: string, init: RequestInit = {}): Promise<T> {
  return callApi<T>(await bearer(userId), `${tasksPath(userId)}${path}`, init);
}

export function listTasks(userId: string): Promise<Task[]> {
  return api(userId, "");
}

export function addTask(userId: string, title: string): Promise<Task> {
  return api(userId, "", { method: "POST", body: JSON.stringify({ title }) });
}

export function setCompleted(userId: string, id: number, completed: boolean): Promise<Task> {
  return api(userId, `/${id}/complete`, { method: "PATCH", body: JSON.stringify({ completed }) });
}

export function renameTask(userId: string, task: Task, title: string): Promise<Task> {
  const body = { title, description: task.description, completed: task.completed };
  return api(userId, `/${task.id}`, { method: "PUT", body: JSON.stringify(body) });
}

export function deleteTask(userId: string, id: number): Promise<void> {
  return api(userId, `/${id}`, { method: "DELETE" });
}
