export { db, getPrisma, type Db, type Tx } from "./client";
export { ensureDatabase, migrateDatabase } from "./migrate";
export { startEmbeddedPostgres, withDatabase } from "./embedded";
