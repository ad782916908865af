/**
 * `slow-consumer`: an anonymous observer subscribes to `device/#` (and the central hub's
 * `appMsg/notify/iot/#`, where `local-hub` devices publish) and stops reading its connection
 * until the fault ends: the broker's writes to it back up. Records what reached it once it read
 * again and whether the broker cut it off (Aedes closes a connection that does not drain within
 * its drain timeout).
 */
import type { Duplex } from 'node:stream';
import mqttPacket from 'mqtt-packet';
import { HUB_PREFIX } from '../../contract/wire.js';
import type { FaultHandler } from './context.js';
import { newRecord } from './record.js';

/**
 * How long the consumer reads once the fault ends: `publishesRead` is what reaches it in this
 * window. A window, not a wait on a condition: the broker keeps releasing its backlog in small
 * batches (each waits for the connection to drain), and no event says it is through.
 */
const READ_WINDOW_MS = 50;

export const slowConsumer: FaultHandler<'slow-consumer'> = (f, run) => {
  const { ctx } = run;
  const until = run.at + f.duration;
  const r = run.record(newRecord('slow-consumer', run.at, until, 0));
  let pipe: Duplex | null = null;
  let cutOff = false;
  let maxQueued0 = 0;
  run.step(run.at, () => {
    const broker = ctx.broker();
    if (!broker || broker.isDown) {
      r.details = { skipped: broker ? 'the broker is down' : 'no embedded broker' };
      return;
    }
    maxQueued0 = broker.emitterStats.maxQueued;
    const p = broker.connectInProcess();
    pipe = p;
    p.on('error', () => undefined);
    p.once('close', () => { cutOff = true; });
    p.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `aiot-sim-slow-consumer-${ctx.seed}`, keepalive: 0 }));
    p.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'device/#', qos: 1 }, { topic: `${HUB_PREFIX}#`, qos: 1 }] }));
    // Nothing reads `p` until the fault ends: the pipe's buffer fills and the broker must wait or give up.
    run.notify('start', r);
  });
  run.step(until, async () => {
    const p = pipe;
    if (!p) return;
    let bytes = 0;
    let publishes = 0;
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    parser.on('packet', (pk) => { if (pk.cmd === 'publish') publishes++; });
    parser.on('error', () => undefined);
    p.on('data', (d: Buffer) => { bytes += d.length; parser.parse(d); });
    await new Promise((res) => setTimeout(res, READ_WINDOW_MS));
    const wasCut = cutOff;
    p.destroy();
    r.details = {
      cutOffByBroker: wasCut, bytesRead: bytes, publishesRead: publishes,
      emitterMaxQueuedDuring: Math.max(0, (ctx.broker()?.emitterStats.maxQueued ?? 0) - maxQueued0),
    };
    run.notify('end', r);
  });
};
