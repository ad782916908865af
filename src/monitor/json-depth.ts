/**
 * How deep JSON text nests, found in one pass over the text before anything parses it. A request
 * body or a `/ws` frame a few kilobytes long can nest arrays thousands deep: `JSON.parse` takes
 * it, but every recursive walk after it (serialising it into an RPC, formatting an error about it)
 * overflows the stack. Text nested deeper than any real request is refused instead.
 */

/** Deepest nesting of arrays and objects a request or frame may have. Real ones need 3 or 4. */
export const MAX_JSON_DEPTH = 32;

/** Whether `text` opens more than `max` arrays or objects inside each other (brackets in strings do not count). */
export function nestedDeeperThan(text: string, max = MAX_JSON_DEPTH): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}
