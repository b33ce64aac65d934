/** Request header carrying the page's path and query to server components (set by proxy.ts). */
export const PATH_HEADER = "x-tuna-path";
