/**
 * The states of a device session and the ways it comes down (see session.ts): which state each
 * teardown leads to, whether it says goodbye, and how it closes the MQTT connection.
 */
import type { MqttClient } from 'mqtt';
import { within } from './waits.js';

/** The longest a clean DISCONNECT is waited for before the connection is closed anyway. */
const DISCONNECT_WAIT_MS = 3000;

/**
 * Where a session is:
 * - `new`: created, `connect()` not called yet;
 * - `connecting`: on its way to the broker: the first connection, or retrying by itself after a
 *   drop (exponential backoff with jitter);
 * - `connected`: the broker accepted it (CONNACK);
 * - `suspended`: its network is gone (a fault): no DISCONNECT, so the broker published its will;
 *   its unacknowledged QoS 1 publishes are kept (to send again); down until `resume()`;
 * - `left`: it left cleanly (a fault): "offline" states, then DISCONNECT (the session closed its
 *   stores, nothing was left in flight); down until `resume()`;
 * - `ended`: stopped or killed; it never comes back.
 */
export type SessionState = 'new' | 'connecting' | 'connected' | 'suspended' | 'left' | 'ended';

/**
 * How a session comes down:
 * - `stop`: for good, cleanly: children and self publish "offline" (retained), then DISCONNECT (no will);
 * - `kill`: for good, abruptly, as a device losing power: no DISCONNECT, the will fires;
 * - `drop`: abruptly, as after a network blip: the will fires, and it reconnects by itself with backoff;
 * - `suspend`: abruptly (the network is lost): the will fires, and it stays down until `resume()`;
 * - `leave`: cleanly, as a device unplugged: "offline" states and DISCONNECT; down until `resume()`.
 */
export type Teardown = 'stop' | 'kill' | 'drop' | 'suspend' | 'leave';

export interface TeardownRule {
  /** The state the session is left in. */
  next: SessionState;
  /** Says goodbye ("offline" states, then DISCONNECT) if it is connected. */
  clean: boolean;
  /** Also applies to a session a fault holds down, or that has ended. */
  evenIfHeld: boolean;
}

export const TEARDOWN: { [H in Teardown]: TeardownRule } = {
  stop: { next: 'ended', clean: true, evenIfHeld: true },
  kill: { next: 'ended', clean: false, evenIfHeld: true },
  drop: { next: 'connecting', clean: false, evenIfHeld: false },
  suspend: { next: 'suspended', clean: false, evenIfHeld: false },
  leave: { next: 'left', clean: true, evenIfHeld: false },
};

/**
 * Close a session's connection as `how` asks. After a goodbye: DISCONNECT. Otherwise abruptly (no
 * DISCONNECT, so the broker publishes the will): `stop` of a session that is not connected ends
 * the client; `kill` destroys the connection and ends the client; `leave` of a session that is not
 * connected makes sure the client is closed; `drop` and `suspend` destroy the connection and keep
 * the client (and its QoS 1 store) for the reconnection. Returns what to wait for, if anything.
 */
export function closeConnection(client: MqttClient, how: Teardown, goodbye: boolean): Promise<void> | null {
  if (goodbye) return disconnect(client, true);
  switch (how) {
    case 'stop':
      client.end(true);
      return null;
    case 'kill':
      client.stream?.destroy();
      client.end(true);
      return null;
    case 'leave':
      return disconnect(client, false);
    case 'drop':
    case 'suspend':
      client.stream?.destroy();
      return null;
  }
}

/** Send DISCONNECT (when `clean`) and wait for it at most 3 s; then make sure the connection is closed. */
async function disconnect(client: MqttClient, clean: boolean): Promise<void> {
  if (clean) await within(client.endAsync(false), DISCONNECT_WAIT_MS);
  // A graceful end still waiting (for acknowledgements that did not come) makes end(true) a no-op:
  // close the socket itself, or it would keep the process alive.
  if (!client.disconnected) {
    client.stream?.destroy();
    client.end(true);
  }
}
