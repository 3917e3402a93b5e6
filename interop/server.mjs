// A real Better Auth server for the interop tests: email and password sign-up,
// the JWT plugin (GET /api/auth/token, GET /api/auth/jwks), SQLite storage.
//
// Configured by environment variables (tests/interop/betterauth.py sets them):
//   PORT                 loopback port to listen on (required)
//   BASE_URL             Better Auth's baseURL: the tokens' iss and aud
//                        (default http://127.0.0.1:PORT)
//   DATABASE_PATH        SQLite file, created and migrated at startup (required)
//   BETTER_AUTH_SECRET   encrypts the private keys in the database (required)
//   KEY_ALG              EdDSA (Better Auth's default), ES256, RS256 or PS256
//   ROTATION_SECONDS     jwks.rotationInterval: a key older than this is
//                        replaced by a new kid on the next signature
// Prints "listening on <url>" once it accepts requests.

import { createServer } from "node:http";

import Database from "better-sqlite3";
import { betterAuth } from "better-auth";
import { getMigrations } from "better-auth/db/migration";
import { toNodeHandler } from "better-auth/node";
import { jwt } from "better-auth/plugins";

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`interop server: set ${name}`);
    process.exit(2);
  }
  return value;
}

const port = Number(required("PORT"));
const baseURL = process.env.BASE_URL || `http://127.0.0.1:${port}`;
const alg = process.env.KEY_ALG || "EdDSA";
const rotation = Number(process.env.ROTATION_SECONDS || 0);

const jwks = {};
if (alg !== "EdDSA") {
  // Only name the algorithm when it is not the default, as a user would.
  jwks.keyPairConfig = { alg };
}
if (rotation > 0) {
  jwks.rotationInterval = rotation;
}

const options = {
  baseURL,
  secret: required("BETTER_AUTH_SECRET"),
  database: new Database(required("DATABASE_PATH")),
  emailAndPassword: { enabled: true },
  plugins: [jwt({ jwks })],
  telemetry: { enabled: false },
};

const { runMigrations } = await getMigrations(options);
await runMigrations();

const auth = betterAuth(options);
const server = createServer(toNodeHandler(auth));
server.listen(port, "127.0.0.1", () => {
  console.log(`listening on http://127.0.0.1:${port} (baseURL ${baseURL}, ${alg})`);
});

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
