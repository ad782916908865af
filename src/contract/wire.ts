/**
 * The MQTT topic contract (DESIGN.md "Topics and payloads"), modelled on Xiaomi's cloud push
 * topics. Shared by devices, the broker's ACL, the platform and monitoring clients.
 */
export type Scalar = boolean | number | string;

export interface PropertiesChangedPayload { did: string; siid: number; piid: number; value: Scalar; ts: number }
export interface EventArgument { piid: number; value: Scalar }
/**
 * Xiaomi's historical spelling, kept on purpose. `seq` numbers a device's events from 1 (across
 * reconnects and reboots), so a consumer can remove the duplicates QoS 1 redelivery makes.
 */
export interface EventOccuredPayload { did: string; siid: number; eiid: number; arguments: EventArgument[]; ts: number; seq: number }
export interface StatePayload {
  did: string;
  event: 'online' | 'offline';
  model: string;
  uid: string;
  parent_id?: string;
  ts: number;
}
export type RpcMethod = 'get_properties' | 'set_properties' | 'action';
export interface RpcRequest { id: number | string; method: RpcMethod; params: unknown }
export interface PropertyResult { did: string; siid: number; piid: number; code: number; value?: Scalar }
export interface ActionResult { did: string; siid: number; aiid: number; code: number; out?: Scalar[] }
export type RpcResponse =
  | { id: number | string | null; result: PropertyResult[] | ActionResult }
  | { id: number | string | null; error: { code: number; message: string } };

/** MIoT result codes. */
export const MiotCode = {
  OK: 0,
  ACCEPTED: 1,
  NOT_READABLE: -4001,
  NOT_WRITABLE: -4002,
  NOT_FOUND: -4003,
  INTERNAL: -4004,
  VALUE_ERROR: -4005,
  ACTION_ARG_ERROR: -4006,
} as const;

/** JSON-RPC style codes for requests that are wrong as a whole. */
export const RpcErrorCode = {
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
} as const;

export const topics = {
  propertiesChanged: (did: string, siid: number, piid: number) => `device/${did}/up/properties_changed/${siid}/${piid}`,
  eventOccured: (did: string, siid: number, eiid: number) => `device/${did}/up/event_occured/${siid}/${eiid}`,
  state: (did: string) => `device/${did}/state`,
  rpcDown: (did: string) => `device/${did}/down/rpc`,
  rpcUp: (did: string) => `device/${did}/up/rpc`,
  downAll: (did: string) => `device/${did}/down/#`,
} as const;

export type TopicKind = 'properties_changed' | 'event_occured' | 'state' | 'rpc_down' | 'rpc_up';

/** Parse a device topic into its did and kind, or undefined for anything else. */
export function parseDeviceTopic(topic: string): { did: string; kind: TopicKind; siid?: number; iid?: number } | undefined {
  const parts = topic.split('/');
  if (parts[0] !== 'device' || !parts[1]) return undefined;
  const did = parts[1];
  if (parts.length === 3 && parts[2] === 'state') return { did, kind: 'state' };
  if (parts.length === 4 && parts[2] === 'down' && parts[3] === 'rpc') return { did, kind: 'rpc_down' };
  if (parts.length === 4 && parts[2] === 'up' && parts[3] === 'rpc') return { did, kind: 'rpc_up' };
  if (parts.length === 6 && parts[2] === 'up' && (parts[3] === 'properties_changed' || parts[3] === 'event_occured')) {
    const siid = Number(parts[4]);
    const iid = Number(parts[5]);
    if (!Number.isInteger(siid) || !Number.isInteger(iid)) return undefined;
    return { did, kind: parts[3], siid, iid };
  }
  return undefined;
}
