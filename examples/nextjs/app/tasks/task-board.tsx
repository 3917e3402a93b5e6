"use client";

import { useRouter } from "next/navigation";
import { useState } from "react";
import { addTask, deleteTask, listTasks, renameTask, setCompleted } from "@/lib/api";
import { authClient } from "@/lib/auth-client";
import type { Task } from "@/lib/tasks";

type Props = { user: { id: string; email: string }; initialTasks: Task[] };

// The list the server rendered, then changed from the browser: every change calls the
// backend (CORS, the JWT as a Bearer token) and lists the tasks again.
export function TaskBoard({ user, initialTasks }: Props) {
  const router = useRouter();
  const [tasks, setTasks] = useState(initialTasks);
  const [error, setError] = useState<string | null>(null);

  async function change(call: () => Promise<unknown>) {
    try {
      await call();
      setTasks(await listTasks(user.id));
      setError(null);
    } catch (failure) {
      setError(String(failure));
    }
  }

  async function signOut() {
    await authClient.signOut();
    router.push("/sign-in");
  }

  return (
    <>
      <p>
        Signed in as {user.email} <button onClick={signOut}>Sign out</button>
      </p>
      <form action={(form) => change(() => addTask(user.id, String(form.get("title"))))}>
        <input name="title" placeholder="New task" aria-label="New task" required maxLength={200} />
        <button type="submit">Add</button>
      </form>
      {error && <p role="alert">{error}</p>}
      <ul>
        {tasks.map((task) => (
          <TaskItem key={task.id} task={task} userId={user.id} change={change} />
        ))}
      </ul>
      <p>{tasks.length === 1 ? "1 task" : `${tasks.length} tasks`}</p>
    </>
  );
}

type ItemProps = { task: Task; userId: string; change: (call: () => Promise<unknown>) => Promise<void> };

function TaskItem({ task, userId, change }: ItemProps) {
  const [editing, setEditing] = useState(false);

  if (editing) {
    const save = (form: FormData) => change(() => renameTask(userId, task, String(form.get("title"))));
    return (
      <li>
        <form action={(form) => save(form).then(() => setEditing(false))}>
          <input name="title" defaultValue={task.title} aria-label="Title" required maxLength={200} />
          <button type="submit">Save</button>
          <button type="button" onClick={() => setEditing(false)}>
            Cancel
          </button>
        </form>
      </li>
    );
  }
  return (
    <li>
      <input
        type="checkbox"
        checked={task.completed}
        aria-label="Done"
        onChange={(event) => change(() => setCompleted(userId, task.id, event.target.checked))}
      />
      <span className={task.completed ? "done" : undefined}>{task.title}</span>
      <button onClick={() => setEditing(true)}>Edit</button>
      <button onClick={() => change(() => deleteTask(userId, task.id))}>Delete</button>
    </li>
  );
}
