import { headers } from "next/headers";
import { redirect } from "next/navigation";
import { Suspense } from "react";
import { auth } from "@/lib/auth";
import { callApi, tasksPath, type Task } from "@/lib/tasks";
import { TaskBoard } from "./task-board";

export default function TasksPage() {
  return (
    <main>
      <h1>Your tasks</h1>
      {/* Reading the request's cookies makes UserTasks dynamic: with cacheComponents (the
          template's default), `next build` fails unless it renders inside <Suspense>.
          The page's shell is prerendered; the tasks stream in per request. */}
      <Suspense fallback={<p>Loading your tasks…</p>}>
        <UserTasks />
      </Suspense>
    </main>
  );
}

// A server component: it asks Better Auth in-process for the session and the JWT,
// then lists the tasks from the backend before the page reaches the browser.
async function UserTasks() {
  const requestHeaders = await headers();
  const session = await auth.api.getSession({ headers: requestHeaders });
  if (!session) redirect("/sign-in");
  const { token } = await auth.api.getToken({ headers: requestHeaders });
  const tasks = await callApi<Task[]>(token, tasksPath(session.user.id));
  return <TaskBoard user={session.user} initialTasks={tasks} />;
}
