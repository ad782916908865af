#!/usr/bin/env node
/**
 * Runs after `npm install` (the `postinstall` script): gives the installed Aedes two fast paths
 * that its connect and subscribe handlers lack, written to go upstream as they are.
 *
 * Aedes answers every CONNECT by streaming the session's queued QoS 1 messages through
 * `stream.pipeline` (an AbortController, end-of-stream listeners, a Transform, a DOMException with
 * its stack when the pipeline ends), and every SUBSCRIBE by piping a retained-message stream into
 * another Transform — even when nothing is queued and nothing is retained, which is what almost
 * every device's connect is. Measured with `aiot-sim bench --devices 8000`: 234-318 µs of broker
 * CPU per connection with them, 116-128 µs without. Both handlers are private to Aedes, so the fix
 * has to be in them: each asks the persistence first, through an optional synchronous method, and
 * takes its old path whenever the persistence does not offer it (aedes-persistence-redis, any
 * other) or answers that there is something to send:
 *
 *   persistence.hasOutgoing(client)       false: nothing queued for this session
 *   persistence.hasRetained(patterns)     false: no retained message matches any of these filters
 *
 * aiot-sim's in-memory persistence (src/broker/persistence.ts) offers both. Another program using
 * the same Aedes copy sees no change unless its persistence offers them too.
 *
 * Idempotent; an Aedes other than the version below, or a handler that does not read as expected,
 * is left as it is with a warning (the broker works, its connects cost about twice the CPU).
 * Usage: node scripts/patch-aedes.mjs [AEDES_DIR]   (default: the Aedes this package resolves)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const VERSION = '1.2.0';
export const MARKER = 'aiot-sim fast path';

/** Each change: the file, the exact text Aedes has, and what takes its place. */
export const CHANGES = [
  {
    file: 'lib/handlers/connect.js',
    before: `  const persistence = client.broker.persistence
  const outgoing = persistence.outgoingStream(client)

  client.resume()
`,
    after: `  const persistence = client.broker.persistence
  // ${MARKER}: no stream pipeline when the persistence says nothing is queued
  if (typeof persistence.hasOutgoing === 'function' && !persistence.hasOutgoing(client)) {
    client.resume()
    return done()
  }
  const outgoing = persistence.outgoingStream(client)

  client.resume()
`,
  },
  {
    file: 'lib/handlers/subscribe.js',
    before: `  if (topics.length > 0) {
    const persistence = broker.persistence
    const stream = persistence.createRetainedStreamCombi(topics)
`,
    after: `  if (topics.length > 0) {
    const persistence = broker.persistence
    // ${MARKER}: no retained stream when the persistence says none matches
    if (typeof persistence.hasRetained === 'function' && !persistence.hasRetained(topics)) return
    const stream = persistence.createRetainedStreamCombi(topics)
`,
  },
];

/** Applies the changes to the Aedes in `dir`; returns what happened to each file, in words. */
export function patchAedes(dir) {
  let version;
  try {
    version = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).version;
  } catch (err) {
    return [{ file: join(dir, 'package.json'), applied: false, why: `cannot read it (${err.code ?? err.message})` }];
  }
  if (version !== VERSION) {
    return [{ file: join(dir, 'package.json'), applied: false, why: `Aedes ${version}, the fast paths are written for ${VERSION}` }];
  }
  return CHANGES.map(({ file, before, after }) => {
    const path = join(dir, file);
    const text = readFileSync(path, 'utf8');
    if (text.includes(MARKER)) return { file: path, applied: true, why: 'already applied' };
    const at = text.indexOf(before);
    if (at < 0 || text.indexOf(before, at + 1) >= 0) return { file: path, applied: false, why: 'the handler does not read as expected' };
    writeFileSync(path, text.slice(0, at) + after + text.slice(at + before.length));
    return { file: path, applied: true, why: 'applied' };
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  let dir = process.argv[2];
  if (!dir) {
    try {
      // aedes.js sits at the package's root (its package.json is not among its exports)
      dir = dirname(fileURLToPath(import.meta.resolve('aedes')));
    } catch {
      console.warn('aiot-sim: Aedes is not installed; no fast paths to apply');
      process.exit(0);
    }
  }
  for (const r of patchAedes(dir)) {
    if (!r.applied) console.warn(`aiot-sim: Aedes fast path not applied to ${r.file}: ${r.why}. The broker works; its connects cost about twice the CPU.`);
  }
}
