-- Settings lists the GitHub/Google accounts that sign in as the user: what identifies each to a human (its email
-- or a GitHub login, stored by the linkAccount event) and when it was linked. Rows linked before
-- this migration get neither: the columns are added without a default, so they stay NULL ("linked before this
-- was recorded") instead of being given the migration's date. Only then does the default apply, to new links.
-- (No semicolons in comments: Prisma's JS schema engine splits the script at every one.)

-- AlterTable
ALTER TABLE "Account" ADD COLUMN "label" TEXT,
ADD COLUMN "linkedAt" TIMESTAMP(3);

-- AlterTable
ALTER TABLE "Account" ALTER COLUMN "linkedAt" SET DEFAULT CURRENT_TIMESTAMP;
