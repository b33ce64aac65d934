// JSON logs. Request-scoped fields are chosen explicitly at call sites; redact paths guard the rest.
import { pino } from "pino";

export type Logger = pino.Logger;

export function createLogger(level = process.env.LOG_LEVEL ?? "info"): Logger {
  return pino({
    level,
    base: { svc: "tuna-router" },
    redact: {
      paths: ["headers", "*.headers", "authorization", "*.authorization", "apiKey", "*.apiKey", "token", "*.token"],
      censor: "[redacted]",
    },
  });
}
