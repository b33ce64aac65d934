/** Password lengths, for the server's checks and the forms' hints alike (no server-only imports here). */
export const MIN_PASSWORD_LENGTH = 10;
export const MAX_PASSWORD_LENGTH = 200;
