/**
 * The load generator, run inside a worker thread (generator-worker.ts): owns a set of device
 * connections, ramps them up, then sends pre-serialised PUBLISH packets at a controlled rate.
 *
 * Rate control is one token bucket per worker, refilled every few milliseconds; the tokens of a
 * tick are spread over the connected devices (a rotating start keeps it fair) and each device's
 * share goes out as ONE write of back-to-back packets. A connection whose socket is backed up
 * (the broker is not reading) or whose QoS 1 window is full gets nothing that tick: those messages
 * are counted as `notSent`, never queued, so a slow broker shows up as a lower achieved rate.
 */
import { performance } from 'node:perf_hooks';
import { buildTemplate, stamp, writeDid, type PacketTemplate } from './payloads.js';
import { emptyStats, wallUs, type BenchDevice, type FromGenerator, type GeneratorConfig, type GeneratorStats, type NotSentWhy, type ToGenerator } from './protocol.js';
import { threadCpuSeconds } from './thread.js';
import { WireClient } from './wire.js';

const TICK_MS = 5;
/** Tokens never pile up beyond this many seconds of traffic (a stalled tick does not become a burst). */
const MAX_BURST_S = 0.05;
const CONNECT_CONCURRENCY = 64;

interface DeviceState {
  dev: BenchDevice;
  client: WireClient | null;
  connecting: boolean;
  seq: number;
  /** The seq of the first message of the open connection, and of the first measured one (-1: none yet). */
  connFromSeq: number;
  measuredFromSeq: number;
  inflight: number;
  nextMsgId: number;
  props: PacketTemplate[];
  events: PacketTemplate[];
}

/** xorshift32: cheap, seeded. */
function rng(seed: number): () => number {
  let x = (seed >>> 0) || 0x9e3779b9;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x / 0x100000000;
  };
}

export class Generator {
  private readonly devices: DeviceState[];
  private readonly rand: () => number;
  private readonly stats: GeneratorStats = emptyStats();
  private running = true;
  private sending = false;
  private measureFromUs = Infinity;
  private measureUntilUs = Infinity;
  private tokens = 0;
  private lastTick = 0;
  private cursor = 0;
  private ticker: NodeJS.Timeout | null = null;
  /** QoS 1 PUBLISHes of every connection not acknowledged yet. */
  private unacked = 0;
  /** After the window: the bound on waiting for the last PUBACKs. */
  private stopping: NodeJS.Timeout | null = null;
  private reporter: NodeJS.Timeout | null = null;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(private readonly cfg: GeneratorConfig, private readonly post: (m: FromGenerator) => void) {
    this.rand = rng(cfg.seed);
    const templates = new Map<string, { props: PacketTemplate[]; events: PacketTemplate[] }>();
    for (const [model, s] of Object.entries(cfg.shapes)) {
      templates.set(model, {
        props: s.properties.map((x) => buildTemplate(x, cfg.runId, cfg.qos, cfg.payloadSize)),
        events: s.events.map((x) => buildTemplate(x, cfg.runId, cfg.qos, cfg.payloadSize)),
      });
    }
    this.devices = cfg.devices.map((dev) => {
      const t = templates.get(dev.model);
      if (!t || t.props.length + t.events.length === 0) throw new Error(`model ${dev.model} has no notify property or event to send`);
      return { dev, client: null, connecting: false, seq: 0, connFromSeq: 0, measuredFromSeq: -1, inflight: 0, nextMsgId: 1, props: t.props, events: t.events };
    });
  }

  async start(): Promise<void> {
    this.reporter = setInterval(() => this.post({ type: 'stats', stats: this.snapshot() }), 500);
    const t0 = performance.now();
    const cpu0 = threadCpuSeconds();
    await this.ramp();
    const cpu1 = threadCpuSeconds();
    this.stats.connectCpuSeconds = cpu0 === null || cpu1 === null ? null : cpu1 - cpu0;
    this.post({ type: 'connected', stats: this.snapshot(), seconds: (performance.now() - t0) / 1000 });
  }

  handle(m: ToGenerator): void {
    if (m.type === 'go') {
      this.measureFromUs = m.measureFromUs;
      this.measureUntilUs = m.measureUntilUs;
      this.sending = true;
      this.lastTick = performance.now();
      this.ticker = setInterval(() => this.tick(), TICK_MS);
    } else if (m.type === 'close') {
      void this.close();
    }
  }

  private snapshot(): GeneratorStats {
    let connected = 0;
    let inflight = 0;
    for (const d of this.devices) {
      if (d.client && !d.client.isClosed) connected++;
      inflight += d.inflight;
    }
    return { ...this.stats, connected, inflight, notSentWhy: { ...this.stats.notSentWhy }, notSentWhyMeasured: { ...this.stats.notSentWhyMeasured }, connectErrors: { ...this.stats.connectErrors }, droppedRanges: [...this.stats.droppedRanges] };
  }

  /** Connect every device, at most `rampPerSecond` per second and CONNECT_CONCURRENCY at once. */
  private async ramp(): Promise<void> {
    const rate = this.cfg.rampPerSecond;
    const t0 = performance.now();
    let next = 0;
    const lane = async (): Promise<void> => {
      while (this.running && next < this.devices.length) {
        const i = next++;
        if (rate > 0) {
          const due = t0 + (i * 1000) / rate;
          const wait = due - performance.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        }
        await this.connect(this.devices[i]!);
      }
    };
    await Promise.all(Array.from({ length: Math.min(CONNECT_CONCURRENCY, this.devices.length) }, lane));
  }

  private async connect(d: DeviceState): Promise<void> {
    if (!this.running || d.connecting) return;
    d.connecting = true;
    const t = performance.now();
    try {
      const client = await WireClient.connect(this.cfg.target, {
        clientId: d.dev.did, keepalive: this.cfg.keepalive,
        ...(d.dev.username !== undefined ? { username: d.dev.username } : {}),
        ...(d.dev.password !== undefined ? { password: d.dev.password } : {}),
      });
      this.stats.connectOk++;
      this.stats.connectMaxMs = Math.max(this.stats.connectMaxMs, performance.now() - t);
      if (!this.running) { client.end(); return; }
      d.client = client;
      d.connFromSeq = d.seq;
      this.setInflight(d, 0);
      client.onPuback = () => {
        if (d.inflight > 0) this.setInflight(d, d.inflight - 1);
        this.stats.acked++;
      };
      client.onClose = () => {
        d.client = null;
        this.setInflight(d, 0);
        if (!this.running) return;
        this.stats.disconnects++;
        const from = d.measuredFromSeq < 0 ? d.seq : Math.max(d.connFromSeq, d.measuredFromSeq);
        if (from < d.seq) this.stats.droppedRanges.push(d.dev.index, from, d.seq);
        this.scheduleReconnect(d);
      };
    } catch (err) {
      this.stats.connectFailed++;
      const key = (err as Error).message.replace(/\d{3,}/g, 'N');
      this.stats.connectErrors[key] = (this.stats.connectErrors[key] ?? 0) + 1;
      this.scheduleReconnect(d);
    } finally {
      d.connecting = false;
    }
  }

  private scheduleReconnect(d: DeviceState): void {
    if (!this.running) return;
    const delay = 50 + this.rand() * this.cfg.reconnectJitterMs;
    const timer = setTimeout(() => { this.timers.delete(timer); void this.connect(d); }, delay);
    this.timers.add(timer);
  }

  private tick(): void {
    const now = performance.now();
    const nowUs = wallUs();
    if (nowUs >= this.measureUntilUs) {
      this.stopSending();
      return;
    }
    const rate = this.cfg.ratePerSecond;
    this.tokens += (rate * (now - this.lastTick)) / 1000;
    this.lastTick = now;
    const cap = Math.max(1, rate * MAX_BURST_S);
    if (this.tokens > cap) {
      // The thread was late (a stall); what it could not send in time is not sent later.
      this.holdBack('late', Math.floor(this.tokens - cap), nowUs);
      this.tokens = cap;
    }
    let n = Math.floor(this.tokens);
    if (n <= 0) return;
    this.tokens -= n;
    const total = this.devices.length;
    const each = Math.floor(n / total);
    let extra = n - each * total;
    const start = this.cursor;
    this.cursor = (this.cursor + extra) % total;
    for (let k = 0; k < total && n > 0; k++) {
      const d = this.devices[(start + k) % total]!;
      let want = each;
      if (extra > 0) { want++; extra--; }
      if (want === 0) continue;
      n -= want;
      this.send(d, want, nowUs);
    }
  }

  /** `n` messages the rate asked for were not written, for `why`; counted for the measured window too when `nowUs` is in it. */
  private holdBack(why: keyof NotSentWhy, n: number, nowUs: number): void {
    if (n <= 0) return;
    const s = this.stats;
    s.notSent += n;
    s.notSentWhy[why] += n;
    if (nowUs >= this.measureFromUs && nowUs < this.measureUntilUs) {
      s.notSentMeasured += n;
      s.notSentWhyMeasured[why] += n;
    }
  }

  private send(d: DeviceState, want: number, nowUs: number): void {
    const c = d.client;
    if (!c || c.isClosed || c.buffered > this.cfg.maxBufferedBytes) {
      this.holdBack('backedUp', want, nowUs);
      return;
    }
    const k = this.cfg.qos === 1 ? Math.max(0, Math.min(want, this.cfg.inflight - d.inflight)) : want;
    this.holdBack('windowFull', want - k, nowUs);
    if (k === 0) return;
    const picks: PacketTemplate[] = new Array(k);
    let bytes = 0;
    const evShare = d.events.length ? (d.props.length ? this.cfg.eventShare : 1) : 0;
    for (let i = 0; i < k; i++) {
      const list = evShare > 0 && this.rand() < evShare ? d.events : d.props;
      const t = list[Math.floor(this.rand() * list.length)]!;
      picks[i] = t;
      bytes += t.buf.length;
    }
    const out = Buffer.allocUnsafe(bytes);
    const measured = nowUs >= this.measureFromUs;
    if (measured && d.measuredFromSeq < 0) d.measuredFromSeq = d.seq;
    let at = 0;
    for (let i = 0; i < k; i++) {
      const t = picks[i]!;
      t.buf.copy(out, at);
      writeDid(out, t, at, d.dev.did);
      let msgId = 0;
      if (this.cfg.qos === 1) {
        msgId = d.nextMsgId;
        d.nextMsgId = d.nextMsgId === 0xffff ? 1 : d.nextMsgId + 1;
        d.inflight++;
        this.unacked++;
      }
      stamp(out, at, t, d.dev.index, d.seq++, nowUs, msgId);
      at += t.buf.length;
    }
    c!.write(out);
    this.stats.sent += k;
    if (measured) this.stats.sentMeasured += k;
  }

  private stopSending(): void {
    if (!this.sending) return;
    this.sending = false;
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = null;
    // QoS 1: report once the outstanding PUBACKs are in (setInflight), or after 3 s.
    this.stopping = setTimeout(() => this.reportStopped(), 3000);
    if (this.unacked === 0) this.reportStopped();
  }

  private reportStopped(): void {
    if (!this.stopping) return;
    clearTimeout(this.stopping);
    this.stopping = null;
    this.post({ type: 'stopped', stats: this.snapshot() });
  }

  /** A connection's unacknowledged count changes (a PUBACK, or a new or lost connection): the last one in ends the stop. */
  private setInflight(d: DeviceState, n: number): void {
    this.unacked += n - d.inflight;
    d.inflight = n;
    if (this.stopping && this.unacked === 0) this.reportStopped();
  }

  async close(): Promise<void> {
    this.running = false;
    if (this.ticker) clearInterval(this.ticker);
    if (this.reporter) clearInterval(this.reporter);
    if (this.stopping) clearTimeout(this.stopping);
    this.stopping = null;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const open = this.devices.map((d) => d.client).filter((c): c is WireClient => c !== null && !c.isClosed);
    await Promise.all(open.map((c) => new Promise<void>((resolve) => {
      c.onClose = () => resolve();
      c.end();
    })));
    this.post({ type: 'closed' });
  }
}
