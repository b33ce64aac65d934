export * from "./service";
export { slugify } from "./slug";
