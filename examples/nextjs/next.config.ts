import type { NextConfig } from "next";

const nextConfig: NextConfig = {
  cacheComponents: true,
  partialPrefetching: true,
  // `next dev` serves its scripts to localhost only: opened at http://127.0.0.1:3000
  // the page would show but never hydrate (a form that does nothing) without this.
  allowedDevOrigins: ["127.0.0.1"],
};

export default nextConfig;
