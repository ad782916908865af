/**
 * `aiot-sim status --platform redis://...`: the merged figures of a shared platform store, as
 * every process counting into it made them, read once (or every few seconds with --watch).
 */
import { RedisStore } from '../platform/redis-store.js';
import type { PlatformSnapshot } from '../platform/service.js';
import { bool, duration, help, parseFlags, text, UsageError } from './args.js';

export const STATUS_USAGE = `aiot-sim status --platform URL [options]: the platform's figures in a shared store

  --platform URL    the Redis the platform counts into (redis://HOST:PORT[/DB])
  --json            print the snapshot as JSON (with "faults" and "store")
  --watch D         print again every D (e.g. 5s) until Ctrl-C
  -h, --help        this help
`;

const FLAGS = { platform: text, json: bool, watch: duration, help };

export async function status(args: string[], out: NodeJS.WritableStream): Promise<number> {
  const { values: v, positionals } = parseFlags(args, FLAGS, 'status');
  if (v.help) {
    out.write(STATUS_USAGE);
    return 0;
  }
  if (positionals.length) throw new UsageError(`status takes no arguments, got "${positionals.join(' ')}"`, 'status');
  if (!v.platform) throw new UsageError('status needs --platform redis://HOST:PORT[/DB]', 'status');
  if (v.watch !== undefined && v.watch < 500) throw new UsageError('--watch: at least 500ms', 'status');
  const store = await RedisStore.connect(v.platform, { refreshMs: 3_600_000 }, '--platform');
  try {
    const print = (): void => {
      const snapshot = store.snapshot();
      const faults = store.faults();
      const health = store.health;
      out.write(v.json ? `${JSON.stringify({ ...snapshot, faults, store: health }, null, 2)}\n` : formatStatus(snapshot, faults, health.url));
    };
    print();
    if (v.watch === undefined) return 0;
    const every = v.watch;
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => { void store.refresh().then(print, () => undefined); }, every);
      const stop = (): void => {
        clearInterval(timer);
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        resolve();
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    return 0;
  } finally {
    await store.close();
  }
}

function formatStatus(s: PlatformSnapshot, faults: Array<Record<string, unknown>>, url: string): string {
  const top = (r: Record<string, number>): string => Object.entries(r).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ') || '-';
  const lines = [
    `platform store ${url}`,
    `  event time        ${s.eventTime === null ? '-' : new Date(s.eventTime).toISOString()}`,
    `  online            ${s.connections.online}`,
    `    by category     ${top(s.connections.byCategory)}`,
    `    by region       ${top(s.connections.byRegion)}`,
    `    by transport    ${top(s.connections.byTransport)}`,
    `  daily active devices ${s.dailyActiveDevices}${s.dailyActiveDevicesWeekMean === null ? '' : ` (week mean ${s.dailyActiveDevicesWeekMean.toFixed(1)})`}`,
    `  active users      DAU ${s.activeUsers.dau}, WAU ${s.activeUsers.wau}, MAU ${s.activeUsers.mau}`,
    `  speaker MAU       ${s.speakerMau}`,
    `  app MAU           ${s.appMau}`,
    `  owners with more than 5 devices ${s.ownersWithMoreThan5Devices}`,
    `  messages          ${top(s.messages.byKind)}; malformed ${s.messages.malformed}, duplicates removed ${s.messages.duplicatesRemoved}, events missing ${s.messages.eventsMissing}`,
    `  faults            ${faults.length ? faults.map((f) => `${String(f['type'])} (${String(f['sessions'] ?? '?')} sessions)`).join(', ') : '-'}`,
  ];
  return lines.join('\n') + '\n';
}
