/** Response headers of GET /api/audit/export that the audit page reads to say how much the file holds (pure: the page imports it). */
export const EXPORT_ROWS_HEADER = "x-tuna-export-rows";
export const EXPORT_TRUNCATED_HEADER = "x-tuna-export-truncated";
export const EXPORT_MAX_ROWS_HEADER = "x-tuna-export-max-rows";
