/** `aiot-sim serve --cluster` broker nodes (the real command, as child processes), ready to serve; for the cluster tests. */
import type { Track } from './cleanup.js';
import { spawnCli, waitForStderr } from './cli.js';

export interface ServedNode {
  child: ReturnType<typeof spawnCli>;
  /** Its MQTT port (TCP, loopback) and URL. */
  port: number;
  url: string;
  /** Its `/metrics`, with the operator token. */
  metricsUrl: string;
}

/**
 * Start `count` nodes of the cluster on Redis `cluster` (with `--platform` when given), operator
 * token `op-token`, every port picked by the system; resolves once each serves.
 */
export async function serveClusterNodes(track: Track, cluster: string, opts: { platform?: string; count?: number } = {}): Promise<ServedNode[]> {
  const args = ['serve', '--cluster', cluster, ...(opts.platform ? ['--platform', opts.platform] : []), '--mqtt-port', '0', '--ws-port', '0', '--http-port', '0', '--token', 'op-token'];
  const children = Array.from({ length: opts.count ?? 2 }, () => track(spawnCli(args)));
  const nodes: ServedNode[] = [];
  for (const child of children) {
    const port = Number((await waitForStderr(child, /broker mqtt:\/\/127\.0\.0\.1:(\d+)/))[1]);
    const metricsUrl = new URL('/metrics?token=op-token', (await waitForStderr(child, /dashboard (http:\/\/\S+)/))[1]).toString();
    await waitForStderr(child, /serving until Ctrl-C/);
    nodes.push({ child, port, url: `mqtt://127.0.0.1:${port}`, metricsUrl });
  }
  return nodes;
}

/** One Prometheus sample's value (no labels), or NaN when absent. */
export function metricSample(text: string, name: string): number {
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
}
