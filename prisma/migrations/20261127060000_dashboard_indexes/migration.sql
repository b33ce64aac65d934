-- Audit log page, "action starts with" filter (Prisma startsWith, i.e. LIKE 'prefix%').
-- Under the database collation the ("teamId", action, seq) index cannot serve LIKE, so a prefix that
-- matches few or no rows made PostgreSQL read the whole team log (about 270 ms at p95 for 1,000,000 rows,
-- see bench/dashboard). With text_pattern_ops the prefix becomes an index range and the query takes
-- well under a millisecond, common prefixes keep using the ("teamId", seq) index.
CREATE INDEX "AuditLog_teamId_action_pattern_seq_idx" ON "AuditLog" ("teamId", "action" text_pattern_ops, "seq");
