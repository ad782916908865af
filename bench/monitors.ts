/**
 * The monitorLoad benchmark's WebSocket monitors, in their own process (as real dashboards would
 * be): N `ws` clients on /ws, each subscribing to its own topic filters; driven over IPC by
 * tasks/traffic.ts (messages in ipc.ts). argv: URL TOKEN JSON(MonitorSpec[]).
 * A stalled client pauses its socket once subscribed: it never reads again, so the server's side backs up.
 */
import WebSocket from 'ws';
import { toParent, type FromMonitors, type MonitorSpec, type ToMonitors } from './ipc.js';

interface Client { ws: WebSocket; spec: MonitorSpec; messages: number; stats: number; dropped: number }

const [url = '', token = '', specJson = '[]'] = process.argv.slice(2);
const specs = JSON.parse(specJson) as MonitorSpec[];
const clients: Client[] = [];
const reply = (m: FromMonitors): void => toParent(m);

/** One client, resolved once its subscription is confirmed (and, when it stalls, its socket paused). */
function open(spec: MonitorSpec): Promise<Client> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}ws?token=${encodeURIComponent(token)}`);
    const c: Client = { ws, spec, messages: 0, stats: 0, dropped: 0 };
    ws.on('message', (data) => {
      const f = JSON.parse(String(data)) as { type: string; count?: number; message?: string };
      if (f.type === 'message') c.messages++;
      else if (f.type === 'stats') c.stats++;
      else if (f.type === 'dropped') c.dropped += f.count ?? 0;
      else if (f.type === 'subscribed') {
        if (spec.stall) ws.pause();
        resolve(c);
      } else if (f.type === 'error') reject(new Error(f.message));
    });
    ws.on('open', () => ws.send(JSON.stringify({ type: 'subscribe', topics: spec.filters })));
    ws.on('error', reject);
  });
}

async function main(): Promise<void> {
  for (let i = 0; i < specs.length; i += 20) clients.push(...await Promise.all(specs.slice(i, i + 20).map(open)));
  reply({ type: 'ready' });
}

process.on('message', (m: ToMonitors) => {
  if (m.type === 'report') {
    reply({ type: 'report', clients: clients.map((c) => ({ messages: c.messages, stats: c.stats, dropped: c.dropped, stall: c.spec.stall === true })) });
  } else if (m.type === 'quit') {
    for (const c of clients) c.ws.terminate();
    setTimeout(() => process.exit(0), 100);
  }
});
process.on('disconnect', () => process.exit(0));
main().catch((err: unknown) => {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`[monitors] ${message}\n`);
  reply({ type: 'error', error: message });
});
