-- Applied after `prisma migrate deploy` by server/db/migrate.ts (Prisma's JS schema engine splits
-- migration scripts at every semicolon, so PL/pgSQL bodies cannot live in a Prisma migration).
-- Idempotent: runs on every start.
--
-- The audit log is append-only: UPDATE and DELETE are refused by the database. A superuser can still
-- disable the trigger, and the hash chain makes that tampering detectable by verifyAuditChain.
-- Deleting a whole team (ON DELETE CASCADE) is allowed when the session sets tuna.allow_audit_cascade.
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN
  IF current_setting('tuna.allow_audit_cascade', true) = 'on' THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'AuditLog is append-only (% refused)', TG_OP;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS audit_log_no_update ON "AuditLog";
DROP TRIGGER IF EXISTS audit_log_no_delete ON "AuditLog";
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON "AuditLog"
  FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON "AuditLog"
  FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
