// Pinned with a full specifier so the source works when imported by URL (no import map).
export { parse as parseYaml } from "npm:yaml@2.9.1";
