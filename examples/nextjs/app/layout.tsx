import type { Metadata } from "next";
import "./globals.css";

// create-next-app's template loads its fonts with next/font/google, which downloads
// them from Google at build time: the example uses the system's fonts instead.

export const metadata: Metadata = {
  title: "Tasks",
  description: "Next.js + Better Auth, calling the todo backend with a JWT",
};

export default function RootLayout({ children }: LayoutProps<"/">) {
  return (
    <html lang="en">
      <body>{children}</body>
    </html>
  );
}
