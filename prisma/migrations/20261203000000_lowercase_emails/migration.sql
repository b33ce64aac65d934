-- Emails are kept lowercased (server/auth/adapter.ts normalizeEmail). Sign-up always stored them so, but a
-- user made at a first GitHub/Google sign-in kept the profile's capitals, and such a user could not use a
-- password reset link (looked up lowercased) nor be matched against a password account of the same address.
-- Lowercases every email that no other user holds in another case. Where two users differ only by case
-- (possible before this change) both are left as they are: each still signs in with its own GitHub/Google
-- account, and an operator can tell them apart in the database.
-- (No semicolons in comments: Prisma's JS schema engine splits the script at every one.)

UPDATE "User" AS u
SET "email" = lower(u."email")
WHERE u."email" IS NOT NULL
  AND u."email" <> lower(u."email")
  AND NOT EXISTS (
    SELECT 1 FROM "User" AS o
    WHERE o."id" <> u."id" AND o."email" IS NOT NULL AND lower(o."email") = lower(u."email")
  );
