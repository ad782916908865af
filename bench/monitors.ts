/**
 * The monitorLoad benchmark's WebSocket monitors, in their own process (as real dashboards would
 * be): N `ws` clients on /ws, each subscribing to its own topic filters. Driven over IPC by worker.js:
 *   argv: URL TOKEN JSON([{ filters: [...], stall: bool }, ...])
 *   <- { type: 'ready' }                     every client connected, subscribed, and the stalled ones paused
 *   -> { type: 'report' }  <- { type: 'report', clients: [{ messages, stats, dropped, stall }] }
 *   -> { type: 'quit' }
 * A stalled client pauses its socket once subscribed: it never reads again, so the server's side backs up.
 */
import WebSocket from 'ws';

const [url, token, specJson] = process.argv.slice(2);
const specs = JSON.parse(specJson);
const clients = [];

function open(spec) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}ws?token=${encodeURIComponent(token)}`);
    const c = { ws, spec, messages: 0, stats: 0, dropped: 0 };
    ws.on('message', (data) => {
      const f = JSON.parse(String(data));
      if (f.type === 'message') c.messages++;
      else if (f.type === 'stats') c.stats++;
      else if (f.type === 'dropped') c.dropped += f.count;
      else if (f.type === 'subscribed') {
        if (spec.stall) ws._socket.pause();
        resolve(c);
      } else if (f.type === 'error') reject(new Error(f.message));
    });
    ws.on('open', () => ws.send(JSON.stringify({ type: 'subscribe', topics: spec.filters })));
    ws.on('error', reject);
  });
}

async function main() {
  for (let i = 0; i < specs.length; i += 20) clients.push(...await Promise.all(specs.slice(i, i + 20).map(open)));
  process.send({ type: 'ready' });
}

process.on('message', (m) => {
  if (m.type === 'report') {
    process.send({ type: 'report', clients: clients.map((c) => ({ messages: c.messages, stats: c.stats, dropped: c.dropped, stall: c.spec.stall === true })) });
  } else if (m.type === 'quit') {
    for (const c of clients) c.ws.terminate();
    setTimeout(() => process.exit(0), 100);
  }
});
process.on('disconnect', () => process.exit(0));
main().catch((err) => {
  process.stderr.write(`[monitors] ${err.message}\n`);
  process.send({ type: 'error', error: err.message });
});
