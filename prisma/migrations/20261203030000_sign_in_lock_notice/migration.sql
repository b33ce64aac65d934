-- The lock an account's teams were told of (audit action auth.sign_in_locked), so that of all the attempts that
-- see a new lock exactly one writes the entry (server/auth/throttle.ts claimLockNotice). Nullable, no default:
-- adding it rewrites nothing.
-- (No semicolons in comments: Prisma's JS schema engine splits the script at every one.)

-- AlterTable
ALTER TABLE "AuthThrottle" ADD COLUMN "lockNoticed" TIMESTAMP(3);
