/**
 * MIoT RPC over `device/{did}/down/rpc`: get_properties, set_properties and action, answered
 * per item with MIoT codes. Network input is never trusted: every field is checked.
 */
import type { ActionSpec, PropertySpec } from '../catalog/schema.js';
import { valueProblem } from '../catalog/validate.js';
import { MiotCode, RpcErrorCode, type ActionResult, type PropertyResult, type RpcResponse, type Scalar } from '../contract/wire.js';

/** Most devices refuse big batches (python-miio caps at 15); we accept up to this many items. */
export const MAX_RPC_ITEMS = 64;

export interface RpcTarget {
  read(siid: number, piid: number): { code: number; value?: Scalar };
  checkWrite(siid: number, piid: number, value: unknown): { code: number };
  applyWrites(items: Array<{ siid: number; piid: number; value: Scalar }>): void;
  action(siid: number, aiid: number): { spec: ActionSpec; inSpecs: PropertySpec[] } | undefined;
  runAction(siid: number, aiid: number, args: Scalar[]): { code: number; out: Scalar[] };
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isIid = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;
const isScalar = (v: unknown): v is Scalar => typeof v === 'boolean' || typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v));

function fail(id: RpcResponse['id'], code: number, message: string): RpcResponse {
  return { id, error: { code, message } };
}

/** Handle one raw request; never throws. */
export function executeRpc(target: RpcTarget, raw: string): RpcResponse {
  let req: unknown;
  try {
    req = JSON.parse(raw);
  } catch {
    return fail(null, RpcErrorCode.PARSE_ERROR, 'payload is not valid JSON');
  }
  if (!isObj(req)) return fail(null, RpcErrorCode.INVALID_REQUEST, 'request must be a JSON object');
  const id = typeof req['id'] === 'number' || typeof req['id'] === 'string' ? req['id'] : null;
  if (id === null) return fail(null, RpcErrorCode.INVALID_REQUEST, 'request needs an "id" (number or string)');
  const method = req['method'];
  const params = req['params'];
  switch (method) {
    case 'get_properties':
    case 'set_properties': {
      if (!Array.isArray(params) || params.length === 0) return fail(id, RpcErrorCode.INVALID_PARAMS, `${method}: params must be a non-empty array`);
      if (params.length > MAX_RPC_ITEMS) return fail(id, RpcErrorCode.INVALID_PARAMS, `${method}: at most ${MAX_RPC_ITEMS} items per request`);
      return { id, result: method === 'get_properties' ? getProperties(target, params) : setProperties(target, params) };
    }
    case 'action':
      if (!isObj(params)) return fail(id, RpcErrorCode.INVALID_PARAMS, 'action: params must be an object {did, siid, aiid, in}');
      return { id, result: runAction(target, params) };
    default:
      return fail(id, RpcErrorCode.METHOD_NOT_FOUND, `unknown method ${JSON.stringify(method)}; expected get_properties, set_properties or action`);
  }
}

function echoDid(item: Obj): string {
  return typeof item['did'] === 'string' ? item['did'] : '';
}

function getProperties(target: RpcTarget, params: unknown[]): PropertyResult[] {
  return params.map((item): PropertyResult => {
    if (!isObj(item) || !isIid(item['siid']) || !isIid(item['piid'])) {
      return { did: isObj(item) ? echoDid(item) : '', siid: 0, piid: 0, code: MiotCode.NOT_FOUND };
    }
    const r = target.read(item['siid'], item['piid']);
    const out: PropertyResult = { did: echoDid(item), siid: item['siid'], piid: item['piid'], code: r.code };
    if (r.value !== undefined) out.value = r.value;
    return out;
  });
}

function setProperties(target: RpcTarget, params: unknown[]): PropertyResult[] {
  const accepted: Array<{ siid: number; piid: number; value: Scalar }> = [];
  const results = params.map((item): PropertyResult => {
    if (!isObj(item) || !isIid(item['siid']) || !isIid(item['piid'])) {
      return { did: isObj(item) ? echoDid(item) : '', siid: 0, piid: 0, code: MiotCode.NOT_FOUND };
    }
    const { siid, piid } = item as { siid: number; piid: number };
    const value = item['value'];
    const r = target.checkWrite(siid, piid, value);
    if (r.code === MiotCode.OK && isScalar(value)) accepted.push({ siid, piid, value });
    return { did: echoDid(item), siid, piid, code: r.code === MiotCode.OK && !isScalar(value) ? MiotCode.VALUE_ERROR : r.code };
  });
  // Writes apply after every item was checked, so a batch is answered against one consistent state.
  if (accepted.length) target.applyWrites(accepted);
  return results;
}

function runAction(target: RpcTarget, params: Obj): ActionResult {
  const did = echoDid(params);
  const siid = params['siid'];
  const aiid = params['aiid'];
  if (!isIid(siid) || !isIid(aiid)) return { did, siid: 0, aiid: 0, code: MiotCode.NOT_FOUND };
  const found = target.action(siid, aiid);
  if (!found) return { did, siid, aiid, code: MiotCode.NOT_FOUND };
  const args = params['in'] ?? [];
  if (!Array.isArray(args) || args.length !== found.inSpecs.length) {
    return { did, siid, aiid, code: MiotCode.ACTION_ARG_ERROR };
  }
  for (let i = 0; i < args.length; i++) {
    if (!isScalar(args[i]) || valueProblem(found.inSpecs[i]!, args[i])) return { did, siid, aiid, code: MiotCode.ACTION_ARG_ERROR };
  }
  const r = target.runAction(siid, aiid, args as Scalar[]);
  return { did, siid, aiid, code: r.code, out: r.out };
}
