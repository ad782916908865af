/**
 * The URLs the commands take (brokers, Redis), checked before anything connects; apart from the
 * clients that use them, so a command checks its flags without loading MQTT.js or ioredis.
 */
import { AiotSimError } from '../errors.js';

/** `mqtt://host:port` or `ws://host:port/path` (also mqtts/wss); anything else is refused with the reason. */
export function checkBrokerUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new AiotSimError('E_OPTIONS', 'input', `--broker: "${url}" is not a URL (expected e.g. mqtt://127.0.0.1:1883 or ws://127.0.0.1:8083/mqtt)`);
  }
  if (!['mqtt:', 'mqtts:', 'ws:', 'wss:', 'tcp:'].includes(u.protocol)) {
    throw new AiotSimError('E_OPTIONS', 'input', `--broker: unsupported scheme "${u.protocol}" in "${url}" (expected mqtt://, mqtts://, ws:// or wss://)`);
  }
  return u;
}

/** `redis://HOST:PORT[/DB]` (or rediss://, with `user:password@`): checked, with the flag named in the error. */
export function checkRedisUrl(url: string, flag = '--platform'): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new AiotSimError('E_OPTIONS', 'input', `${flag}: "${url}" is not a URL (expected redis://HOST:PORT[/DB])`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    throw new AiotSimError('E_OPTIONS', 'input', `${flag}: unsupported scheme "${u.protocol}" in "${url}" (expected redis://HOST:PORT[/DB])`);
  }
  const db = u.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d{1,2}$/.test(db)) throw new AiotSimError('E_OPTIONS', 'input', `${flag}: database "${db}" in "${url}" is not a number (redis://HOST:PORT/DB)`);
  return u;
}

/** The URL without its password (for messages and reports). */
export function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url;
  }
}
