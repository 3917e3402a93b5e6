// The backend's API, for the browser and the server alike: the URL, a task, and one
// call that sends the user's JWT and turns the backend's problem+json into an error.

// Inlined by `next build` into the browser's code and the server's: rebuild after changing it.
export const API_URL = process.env.NEXT_PUBLIC_API_URL ?? "http://localhost:8000";

export type Task = {
  id: number;
  user_id: string;
  title: string;
  description: string | null;
  completed: boolean;
  created_at: string;
  updated_at: string;
};

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
  ) {
    super(`${status} ${code}: ${detail}`);
  }
}

export async function callApi<T>(token: string, path: string, init: RequestInit = {}): Promise<T> {
  const headers = new Headers(init.headers);
  headers.set("Authorization", `Bearer ${token}`);
  if (init.body) headers.set("Content-Type", "application/json");
  const response = await fetch(`${API_URL}${path}`, { ...init, headers });
  if (!response.ok) {
    const problem = await response.json().catch(() => ({})); // application/problem+json
    throw new ApiError(response.status, problem.code ?? "", problem.detail ?? response.statusText);
  }
  return (response.status === 204 ? undefined : await response.json()) as T;
}

export function tasksPath(userId: string): string {
  return `/api/${encodeURIComponent(userId)}/tasks`;
}
