export { appRouter, createCaller, type AppRouter } from "./root";
export type { Context, Meta, SessionUser } from "./init";
