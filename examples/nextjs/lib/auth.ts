import Database from "better-sqlite3";
import { betterAuth } from "better-auth";
import { nextCookies } from "better-auth/next-js";
import { jwt } from "better-auth/plugins";

// Better Auth reads BETTER_AUTH_URL (its base URL: every token's iss and aud, and
// the backend's BETTER_AUTH_URL must be the same text) and BETTER_AUTH_SECRET.
export const auth = betterAuth({
  database: new Database(process.env.AUTH_DATABASE_PATH ?? "auth.sqlite"),
  emailAndPassword: { enabled: true },
  plugins: [jwt(), nextCookies()], // nextCookies() last
});
