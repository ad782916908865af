/**
 * MQTT 3.1.1 topic names and filters (section 4.7): what is valid, and whether two filters can
 * match a common topic. Shared by the broker (which refuses what the standard forbids) and the
 * monitor's tap; imports nothing.
 */

/** Why `filter` is not a valid MQTT topic filter, or null when it is (MQTT-4.7.1-2, 4.7.1-3, 4.7.3-1, 1.5.3-2). */
export function filterProblem(filter: string): string | null {
  if (filter.length === 0) return 'a topic filter must not be empty';
  if (Buffer.byteLength(filter, 'utf8') > 65_535) return 'a topic filter must be at most 65,535 bytes';
  if (filter.includes('\u0000')) return 'a topic filter must not contain U+0000';
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    const l = levels[i]!;
    if (l.includes('#') && (l !== '#' || i !== levels.length - 1)) return '"#" must be a whole level and the last one';
    if (l.includes('+') && l !== '+') return '"+" must be a whole level';
  }
  return null;
}

/** Why `topic` is not a valid topic name to publish to, or null when it is (MQTT-3.3.2-2, 4.7.3-1, 1.5.3-2). */
export function topicNameProblem(topic: string): string | null {
  if (topic.length === 0) return 'a topic name must not be empty';
  if (topic.includes('\u0000')) return 'a topic name must not contain U+0000';
  if (topic.includes('+') || topic.includes('#')) return 'a topic name must not contain the wildcards "+" or "#"';
  return null;
}

/**
 * Whether some topic matches both filters (valid ones): `#` matches the rest (its parent level
 * included), `+` one level, other levels must be equal. A filter starting with a wildcard matches
 * no topic starting with `$` (MQTT-4.7.2-1).
 */
export function filtersOverlap(a: string, b: string): boolean {
  const x = a.split('/');
  const y = b.split('/');
  const dollar = (l: string): boolean => l.startsWith('$');
  if ((isWild(x[0]!) && dollar(y[0]!)) || (isWild(y[0]!) && dollar(x[0]!))) return false;
  for (let i = 0; ; i++) {
    const p = x[i];
    const q = y[i];
    if (p === '#' || q === '#') return true;
    if (p === undefined || q === undefined) return p === q;
    if (p !== '+' && q !== '+' && p !== q) return false;
  }
}

/** Whether `topic` matches the valid filter `filter`. */
export function topicMatches(filter: string, topic: string): boolean {
  if (filter.length && (filter[0] === '+' || filter[0] === '#') && topic.startsWith('$')) return false;
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

function isWild(level: string): boolean {
  return level === '+' || level === '#';
}
