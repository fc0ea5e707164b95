/** Length of the id prefixes shown to people. */
export const SHORT_ID = 7;

/** A new random id: 32 lowercase hex characters (128 bits). */
export function newId(): string {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** The short form of an id shown in tables. */
export function shortId(id: string): string {
  return id.slice(0, SHORT_ID);
}

/** True for a well-formed full id. */
export function isId(s: unknown): s is string {
  return typeof s === "string" && /^[0-9a-f]{32}$/.test(s);
}
