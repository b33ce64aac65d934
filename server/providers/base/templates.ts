import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Strict template rendering for `templates/<provider>/`.
 *
 * Placeholders are `{{ name | filter }}`; the filter is mandatory and says how the value is escaped for the
 * file it lands in, so a model name can never inject into YAML, shell, Python, TOML or JSON:
 *   yaml  → a double-quoted YAML scalar          shell → a single-quoted POSIX shell word
 *   py    → a Python string literal               json  → a JSON value (JSON.stringify)
 *   toml  → a TOML basic string                   int   → a base-10 integer (rejects anything else)
 *   raw   → inserted as is; only for fragments this code rendered itself (never user input)
 * A placeholder without a value, or a value without a placeholder, is an error.
 */

export type TemplateValue = string | number | boolean | string[];
export type TemplateVars = Record<string, TemplateValue>;

export class TemplateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TemplateError";
  }
}

const PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\|\s*([a-z]+)\s*\}\}/g;
const ANY_BRACES = /\{\{[^}]*\}\}/g;

function str(name: string, v: TemplateValue): string {
  if (Array.isArray(v)) throw new TemplateError(`variable ${name} is a list; use the json filter`);
  return String(v);
}

function escapeCodePoints(quoted: string, re: RegExp): string {
  return quoted.replace(re, (c) => `\\u${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}`);
}

function escapeFor(filter: string, name: string, v: TemplateValue): string {
  switch (filter) {
    case "json":
      return JSON.stringify(v);
    case "yaml":
      // JSON strings are valid YAML double-quoted scalars; newlines and quotes are escaped. JSON leaves DEL,
      // C1 controls, U+2028/2029 and BOM raw: YAML calls them non-printable (or line breaks, in YAML 1.1).
      return escapeCodePoints(JSON.stringify(str(name, v)), /[\u007f-\u009f\u2028\u2029\ufeff]/g);
    case "toml":
      // TOML basic strings forbid a raw DEL; JSON.stringify leaves it raw.
      return escapeCodePoints(JSON.stringify(str(name, v)), /\u007f/g);
    case "py":
      // A JSON string literal is a valid Python str literal for every code point we emit.
      return JSON.stringify(str(name, v));
    case "shell": {
      const s = str(name, v);
      return `'${s.replace(/'/g, `'\\''`)}'`;
    }
    case "int": {
      const s = str(name, v);
      if (!/^-?\d+$/.test(s)) throw new TemplateError(`variable ${name} must be an integer, got ${JSON.stringify(s)}`);
      return s;
    }
    case "raw":
      return str(name, v);
    default:
      throw new TemplateError(`unknown filter "${filter}" for variable ${name}`);
  }
}

export function renderTemplateString(template: string, vars: TemplateVars, label = "template"): string {
  const used = new Set<string>();
  const missing: string[] = [];
  const out = template.replace(PLACEHOLDER, (_m, name: string, filter: string) => {
    used.add(name);
    if (!(name in vars) || vars[name] === undefined) {
      missing.push(name);
      return "";
    }
    return escapeFor(filter, name, vars[name] as TemplateValue);
  });
  if (missing.length) throw new TemplateError(`${label}: missing variable(s) ${[...new Set(missing)].join(", ")}`);
  const unknown = Object.keys(vars).filter((k) => !used.has(k));
  if (unknown.length) throw new TemplateError(`${label}: unknown variable(s) ${unknown.join(", ")}`);
  const leftover = template.replace(PLACEHOLDER, "").match(ANY_BRACES);
  if (leftover) throw new TemplateError(`${label}: malformed placeholder ${leftover[0]}`);
  return out;
}

const here = path.dirname(fileURLToPath(import.meta.url));
/** Repository `templates/` folder. */
export const TEMPLATES_DIR = process.env.TUNA_TEMPLATES_DIR ?? path.resolve(here, "../../../templates");

export function loadTemplate(relPath: string): string {
  return readFileSync(path.join(TEMPLATES_DIR, relPath), "utf8");
}

export function renderTemplate(relPath: string, vars: TemplateVars): string {
  return renderTemplateString(loadTemplate(relPath), vars, relPath);
}
