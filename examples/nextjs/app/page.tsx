import Link from "next/link";

export default function Home() {
  return (
    <main>
      <h1>Tasks</h1>
      <p>
        <Link href="/sign-up">Sign up</Link> or <Link href="/sign-in">sign in</Link>, then
        see <Link href="/tasks">your tasks</Link>.
      </p>
    </main>
  );
}
