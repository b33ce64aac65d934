/**
 * Field errors as sentences a user can act on. The server sends zod's field errors as they are
 * (`z.flattenError`); zod's built-in wording ("Too small: expected string to have >=1 characters") is for
 * developers, so every field error shown in the app goes through `plainFieldMessage`. Messages written for
 * users in a schema ("Enter your name") pass through, made into sentences. The patterns follow zod 4's
 * English locale; field-messages.test.ts pins them with real zod errors, so a rewording shows up there.
 */

const UNIT_SINGULAR: Record<string, string> = { characters: "character", items: "item", entries: "entry", bytes: "byte" };

/** "monthlyLimitMicros" → "monthly limit micros", for "Enter a …" when a required text field is empty. */
function words(field: string): string {
  return field
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .replace(/[_-]+/g, " ")
    .toLowerCase()
    .trim();
}

function enter(field: string | undefined): string {
  const w = field ? words(field) : "";
  if (!w) return "Enter a value.";
  return `Enter ${/^[aeiou]/.test(w) ? "an" : "a"} ${w}.`;
}

function count(n: string, unit: string): string {
  return `${n} ${n === "1" ? (UNIT_SINGULAR[unit] ?? unit) : unit}`;
}

function sentence(message: string): string {
  const m = message.trim();
  if (!m) return m;
  const first = m.charAt(0).toUpperCase() + m.slice(1);
  return /[.!?…)]$/.test(first) ? first : `${first}.`;
}

function listOfValues(values: string): string {
  return values
    .split("|")
    .map((v) => v.replace(/^"(.*)"$/, "$1"))
    .join(", ");
}

/** One field error as a plain sentence; `field` is the input's key, used only for "Enter a …". */
export function plainFieldMessage(message: string, field?: string): string {
  let m: RegExpMatchArray | null;
  // Lengths: strings, arrays, sets, maps, files.
  if ((m = message.match(/^Too small: expected \w+ to have (>=|>|exactly )(\S+) (\w+)$/))) {
    const [, op, n, unit] = m;
    if (unit === "characters" && ((op === ">=" && n === "1") || (op === ">" && n === "0"))) return enter(field);
    if (op === "exactly ") return `Exactly ${count(n, unit)}.`;
    return op === ">=" ? `At least ${count(n, unit)}.` : `More than ${count(n, unit)}.`;
  }
  if ((m = message.match(/^Too big: expected \w+ to have (<=|<|exactly )(\S+) (\w+)$/))) {
    const [, op, n, unit] = m;
    if (op === "exactly ") return `Exactly ${count(n, unit)}.`;
    return op === "<=" ? `At most ${count(n, unit)}.` : `Fewer than ${count(n, unit)}.`;
  }
  // Numbers, bigints, dates.
  if ((m = message.match(/^Too small: expected \w+ to be (>=|>|exactly )(.+)$/))) {
    const [, op, n] = m;
    return op === ">=" ? `Must be at least ${n}.` : op === ">" ? `Must be more than ${n}.` : `Must be exactly ${n}.`;
  }
  if ((m = message.match(/^Too big: expected \w+ to be (<=|<|exactly )(.+)$/))) {
    const [, op, n] = m;
    return op === "<=" ? `Must be at most ${n}.` : op === "<" ? `Must be less than ${n}.` : `Must be exactly ${n}.`;
  }
  if ((m = message.match(/^Invalid input: expected (\w+), received (\w+)$/))) {
    const [, expected, received] = m;
    if (received === "undefined" || received === "null") return expected === "string" ? enter(field) : "Required.";
    if (expected === "int") return "Enter a whole number.";
    if (expected === "number" || expected === "bigint") return "Enter a number.";
    if (expected === "date") return "Enter a valid date.";
    if (expected === "boolean") return "Choose yes or no.";
    return "This value is not valid here.";
  }
  if ((m = message.match(/^Invalid option: expected one of (.+)$/))) return `Choose one of: ${listOfValues(m[1])}.`;
  if ((m = message.match(/^Invalid input: expected "(.*)"$/))) return `Must be “${m[1]}”.`;
  if ((m = message.match(/^Invalid input: expected (.+)$/))) return `Must be ${m[1]}.`;
  if ((m = message.match(/^Invalid string: must start with "(.*)"$/))) return `Must start with “${m[1]}”.`;
  if ((m = message.match(/^Invalid string: must end with "(.*)"$/))) return `Must end with “${m[1]}”.`;
  if ((m = message.match(/^Invalid string: must include "(.*)"$/))) return `Must include “${m[1]}”.`;
  if (/^Invalid string: must match pattern /.test(message)) return "Contains characters that are not allowed here.";
  if ((m = message.match(/^Invalid number: must be a multiple of (.+)$/))) return `Must be a multiple of ${m[1]}.`;
  if ((m = message.match(/^Unrecognized keys?: (.+)$/))) return `Not accepted here: ${m[1]}.`;
  if (/^Invalid (input|value in \w+|key in \w+|discriminator value.*)$/.test(message)) return "This value is not valid here.";
  // Formats: "Invalid email address", "Invalid URL", "Invalid UUID", "Invalid ISO datetime"…
  if ((m = message.match(/^Invalid ([\w .-]*\w)$/))) return `Enter a valid ${m[1]}.`;
  return sentence(message);
}

/** The first error of each field, in plain words (what forms show next to the field). */
export function plainFieldErrors(fields: Record<string, string[] | undefined>): Record<string, string | undefined> {
  return Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, v?.[0] === undefined ? undefined : plainFieldMessage(v[0], k)]));
}
