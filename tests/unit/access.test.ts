import { describe, expect, it } from 'vitest';
import { parseArgs } from 'node:util';
import { AccessDirectory, newOperatorToken, safeEqual } from '../../src/broker/access.js';

function dir() {
  const d = new AccessDirectory('op-secret');
  d.registerDevice('111', { token: 't111', uid: 'u1' });
  d.registerDevice('222', { token: 't222', uid: 'u2', children: ['lumi.158d0001'] });
  d.registerUser('u1', 'app1');
  return d;
}

describe('broker access rules', () => {
  it('compares a secret with what a client sent: equal only when every code unit and the length match', () => {
    expect(safeEqual('t0k3n', 't0k3n')).toBe(true);
    expect(safeEqual('', '')).toBe(true);
    expect(safeEqual('t0k3N', 't0k3n')).toBe(false);
    expect(safeEqual('X0k3n', 't0k3n')).toBe(false);
    expect(safeEqual('t0k3', 't0k3n')).toBe(false); // a prefix
    expect(safeEqual('t0k3nt0k3n', 't0k3n')).toBe(false); // the secret twice: cycling it must not match
    expect(safeEqual('t0k3n ', 't0k3n')).toBe(false);
    expect(safeEqual('', 't0k3n')).toBe(false);
    expect(safeEqual('t0k3n', '')).toBe(false);
    expect(safeEqual('clé-ü', 'clé-ü')).toBe(true);
    expect(safeEqual('clé-u', 'clé-ü')).toBe(false);
    expect(safeEqual('\u{1F511}', '\u{1F511}')).toBe(true);
    expect(safeEqual('\u{1F512}', '\u{1F511}')).toBe(false);
  });

  it('authenticates devices, the operator, app users and anonymous observers', () => {
    const d = dir();
    expect(d.authenticate('111', '111', 't111')).toEqual({ role: 'device', did: '111' });
    expect(d.authenticate('111', '111', 'wrong')).toHaveProperty('refused');
    expect(d.authenticate('other', '111', 't111')).toHaveProperty('refused');
    expect(d.authenticate('999', '999', 'x')).toHaveProperty('refused');
    expect(d.authenticate('any', 'operator', 'op-secret')).toEqual({ role: 'operator' });
    expect(d.authenticate('any', 'operator', 'op-secreT')).toHaveProperty('refused');
    expect(d.authenticate('phone', 'app:u1', 'app1')).toEqual({ role: 'app', uid: 'u1' });
    expect(d.authenticate('phone', 'app:u1', 'nope')).toHaveProperty('refused');
    expect(d.authenticate('viewer', undefined, undefined)).toEqual({ role: 'observer' });
    d.allowAnonymous = false;
    expect(d.authenticate('viewer', undefined, undefined)).toHaveProperty('refused');
  });

  it('lets a device publish only its own up/ and state topics, a gateway also its children\'s', () => {
    const d = dir();
    const dev = { role: 'device', did: '111' } as const;
    const gw = { role: 'device', did: '222' } as const;
    expect(d.canPublish(dev, 'device/111/up/properties_changed/2/1')).toBe(true);
    expect(d.canPublish(dev, 'device/111/state')).toBe(true);
    expect(d.canPublish(dev, 'device/222/up/properties_changed/2/1')).toMatch(/may publish only/);
    expect(d.canPublish(dev, 'device/111/down/rpc')).toMatch(/may publish only/);
    expect(d.canPublish(dev, 'device/111/upx')).toMatch(/may publish only/);
    expect(d.canPublish(dev, 'device/111/statex')).toMatch(/may publish only/);
    expect(d.canPublish(dev, 'device/111/state/x')).toMatch(/may publish only/);
    expect(d.canPublish(dev, 'device/1110/up/x')).toMatch(/may publish only/); // a did that begins with its own
    expect(d.canPublish(dev, 'device/11/up/x')).toMatch(/may publish only/);
    expect(d.canPublish(dev, 'device/111')).toMatch(/may publish only/);
    expect(d.canPublish(gw, 'device/lumi.158d0001/up/event_occured/2/1')).toBe(true);
    expect(d.canPublish(gw, 'device/lumi.158d0001/state')).toBe(true);
    expect(d.canPublish(dev, 'device/lumi.158d0001/state')).toMatch(/may publish only/);
  });

  it('lets a device publish its own central-hub notifications (local-hub profile), a gateway also its children\'s', () => {
    const d = dir();
    const dev = { role: 'device', did: '111' } as const;
    const gw = { role: 'device', did: '222' } as const;
    expect(d.canPublish(dev, 'appMsg/notify/iot/111/property/2.1')).toBe(true);
    expect(d.canPublish(dev, 'appMsg/notify/iot/111/event/2.1')).toBe(true);
    expect(d.canPublish(dev, 'appMsg/notify/iot/222/property/2.1')).toMatch(/may publish only/);
    expect(d.canPublish(dev, 'appMsg/notify/iot/111/other/2.1')).toMatch(/may publish only/);
    expect(d.canPublish(dev, 'appMsg/devListChange')).toMatch(/may publish only/);
    expect(d.canPublish(gw, 'appMsg/notify/iot/lumi.158d0001/event/2.1')).toBe(true);
    expect(d.canPublish(dev, 'appMsg/notify/iot/lumi.158d0001/event/2.1')).toMatch(/may publish only/);
  });

  it('lets observers read central-hub notifications but never forge them; app users read only their own', () => {
    const d = dir();
    expect(d.canSubscribe({ role: 'observer' }, 'appMsg/notify/iot/#')).toBe(true);
    expect(d.canPublish({ role: 'observer' }, 'appMsg/notify/iot/111/property/2.1')).toMatch(/may not publish/);
    expect(d.canPublish({ role: 'operator' }, 'appMsg/notify/iot/111/property/2.1')).not.toBe(true);
    expect(d.canPublish({ role: 'app', uid: 'u1' }, 'appMsg/notify/iot/111/property/2.1')).not.toBe(true);
    expect(d.canSubscribe({ role: 'app', uid: 'u1' }, 'appMsg/notify/iot/111/#')).toBe(true);
    expect(d.canSubscribe({ role: 'app', uid: 'u1' }, 'appMsg/notify/iot/222/#')).not.toBe(true);
    expect(d.canSubscribe({ role: 'app', uid: 'u1' }, 'appMsg/notify/iot/#')).not.toBe(true);
  });

  it('lets a device subscribe only to its own (or its children\'s) commands', () => {
    const d = dir();
    expect(d.canSubscribe({ role: 'device', did: '111' }, 'device/111/down/#')).toBe(true);
    expect(d.canSubscribe({ role: 'device', did: '111' }, 'device/222/down/#')).not.toBe(true);
    expect(d.canSubscribe({ role: 'device', did: '111' }, 'device/#')).not.toBe(true);
    expect(d.canSubscribe({ role: 'device', did: '222' }, 'device/lumi.158d0001/down/rpc')).toBe(true);
  });

  it('lets the operator command any device, app users only their own, observers nothing reserved', () => {
    const d = dir();
    expect(d.canPublish({ role: 'operator' }, 'device/222/down/rpc')).toBe(true);
    expect(d.canPublish({ role: 'operator' }, 'device/222/up/rpc')).not.toBe(true);
    expect(d.canPublish({ role: 'operator' }, '$SYS/x')).not.toBe(true);
    expect(d.canPublish({ role: 'app', uid: 'u1' }, 'device/111/down/rpc')).toBe(true);
    expect(d.canPublish({ role: 'app', uid: 'u1' }, 'device/222/down/rpc')).not.toBe(true);
    expect(d.canPublish({ role: 'app', uid: 'u1' }, 'app/u1/session')).toBe(true);
    expect(d.canPublish({ role: 'app', uid: 'u1' }, 'app/u2/session')).not.toBe(true);
    expect(d.canSubscribe({ role: 'app', uid: 'u1' }, 'device/111/#')).toBe(true);
    expect(d.canSubscribe({ role: 'app', uid: 'u1' }, 'device/#')).not.toBe(true);
    expect(d.canPublish({ role: 'observer' }, 'device/111/up/rpc')).not.toBe(true);
    expect(d.canPublish({ role: 'observer' }, 'app/u1/x')).not.toBe(true);
    expect(d.canPublish({ role: 'observer' }, 'bench/reply')).toBe(true);
    d.anonymous = 'all'; // what every anonymous client could do before --anonymous (issue 14)
    expect(d.canSubscribe({ role: 'observer' }, 'device/#')).toBe(true);
    expect(d.canSubscribe({ role: 'observer' }, '$SYS/#')).toBe(true);
  });
});

describe('operator tokens made when none is given', () => {
  it('are 16 base64url characters, all different, and never begin with "-" (a command line would take one for an option)', () => {
    const tokens = Array.from({ length: 20_000 }, newOperatorToken); // about 300 would begin with "-" by chance
    for (const t of tokens) {
      expect(t).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_-]{15}$/);
      // What `aiot-sim record --password TOKEN` does with it (node's parseArgs, strict).
      expect(parseArgs({ args: ['--password', t], options: { password: { type: 'string' } } }).values.password).toBe(t);
    }
    expect(new Set(tokens).size).toBe(tokens.length);
  });
});
