/** RPC over MQTT as a real client would do it: publish on down/rpc, await the reply on up/rpc. */
import type { MqttClient } from 'mqtt';
import type { RpcResponse } from '../../src/contract/wire.js';
import { nextMessage } from './mqtt.js';

/** Publish a raw payload to `device/{did}/down/rpc` and resolve with the first reply on up/rpc matching `match`. */
export async function rawRpc(client: MqttClient, did: string, payload: string, match: (res: RpcResponse) => boolean, ms = 5000): Promise<RpcResponse> {
  const reply = nextMessage(client, (topic, text) => {
    if (topic !== `device/${did}/up/rpc`) return false;
    try {
      return match(JSON.parse(text) as RpcResponse);
    } catch {
      return false;
    }
  }, ms);
  await client.publishAsync(`device/${did}/down/rpc`, payload, { qos: 1 });
  return JSON.parse((await reply).payload) as RpcResponse;
}

let nextId = 1000;

/** One MIoT RPC request; `client` must be subscribed to `device/{did}/up/rpc` (or a wildcard covering it). */
export function rpc(client: MqttClient, did: string, method: string, params: unknown, ms = 5000): Promise<RpcResponse> {
  const id = ++nextId;
  return rawRpc(client, did, JSON.stringify({ id, method, params }), (res) => res.id === id, ms);
}

/** The `result` array of a property RPC; throws on an error reply. */
export function results(res: RpcResponse): Array<{ did: string; siid: number; piid: number; code: number; value?: unknown }> {
  if ('error' in res) throw new Error(`RPC error ${res.error.code}: ${res.error.message}`);
  if (!Array.isArray(res.result)) throw new Error('expected a property result array');
  return res.result;
}

/** Read one property over MQTT; returns its value (throws unless code 0). */
export async function readProperty(client: MqttClient, did: string, siid: number, piid: number): Promise<unknown> {
  const [r] = results(await rpc(client, did, 'get_properties', [{ did, siid, piid }]));
  if (!r || r.code !== 0) throw new Error(`get_properties ${siid}.${piid} answered code ${r?.code}`);
  return r.value;
}
