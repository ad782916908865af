/** A fault as the platform saw it, in event time: how low its online count went, when, and when it was back. */
import { when } from '../waits.js';
import type { FaultContext } from './context.js';
import { iso, type Dip } from './record.js';

/** How long to wait for the platform to see the announcements of sessions that are back. */
const PLATFORM_CATCH_UP_MS = 5000;

/**
 * The platform's lowest online count since `from` (a minute before, to catch the drop) and the
 * event-time minute of it, and the minute the count was back to `before`. Waits (bounded) for the
 * platform to see the announcements first: a PUBACK can reach a device before the broker has
 * forwarded the message.
 */
export async function measureDip(ctx: FaultContext, from: number, before: number): Promise<Dip> {
  const platform = ctx.platform;
  await when(() => platform.online >= before, ctx.platformNews, PLATFORM_CATCH_UP_MS);
  const buckets = platform.onlineHistory(from - 60_000, ctx.scheduler.now() + 60_000);
  const out: Dip = { onlineBefore: before, onlineAfter: platform.online };
  if (!buckets.length) return out;
  let low = buckets[0]!;
  for (const b of buckets) if (b.min < low.min) low = b;
  out.onlineLowest = low.min;
  out.onlineLowestAt = iso(low.t);
  const back = buckets.find((b) => b.t >= low.t && b.last >= before);
  if (back) out.onlineBackAt = iso(back.t);
  return out;
}
