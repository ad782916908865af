#!/usr/bin/env node
/**
 * Runs before `npm test` (the `pretest` script): makes sure the real programs the integration
 * tests drive are on this machine, so a fresh clone passes the README's test command with nothing
 * else done. They are Debian packages:
 *   mosquitto          a second, independent MQTT broker (external-broker tests, bench comparison)
 *   mosquitto-clients  mosquitto_sub / mosquitto_pub (the README's consumer examples)
 *   chromium           the dashboard's end-to-end test (driven by playwright-core)
 *   redis-server       the shared platform store and broker cluster tests
 *   curl, iproute2     the README's tour, which tests/integration/readme.test.ts runs as written,
 *                      in a network namespace of its own (`ip` brings its loopback up)
 * What is missing is installed with apt-get when this runs as root or with passwordless sudo;
 * otherwise it stops at once and prints the one command to run. On a machine run by systemd, apt-get
 * also starts (and enables) the Mosquitto and Redis services of the packages it installs; the tests
 * start their own on free ports, and a system Mosquitto would hold 1883, the port `aiot-sim run`
 * uses by default, so the services this step caused are stopped and disabled again (it says so).
 * AIOT_SIM_SKIP_PREREQS=1 skips the check (for a machine that provides these some other way).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';

const NEEDS = [
  { pkg: 'mosquitto', bins: ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto'] },
  { pkg: 'mosquitto-clients', bins: ['/usr/bin/mosquitto_sub', '/usr/local/bin/mosquitto_sub'] },
  { pkg: 'chromium', bins: ['/usr/bin/chromium'] },
  { pkg: 'redis-server', bins: ['/usr/bin/redis-server', '/usr/local/bin/redis-server'] },
  { pkg: 'curl', bins: ['/usr/bin/curl', '/usr/local/bin/curl'] },
  { pkg: 'iproute2', bins: ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'] },
];

function executable(path) {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function say(line) {
  process.stderr.write(`test prerequisites: ${line}\n`);
}

function missingPackages() {
  return NEEDS.filter((n) => !n.bins.some(executable)).map((n) => n.pkg);
}

function canRun(cmd, args) {
  return spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
}

if (process.env.AIOT_SIM_SKIP_PREREQS === '1') process.exit(0);
const missing = missingPackages();
if (missing.length === 0) process.exit(0);

const install = `apt-get update && apt-get install -y --no-install-recommends ${missing.join(' ')}`;
const hasApt = canRun('sh', ['-c', 'command -v apt-get']);
if (!hasApt) {
  say(`missing ${missing.join(', ')}, and this machine has no apt-get. Install them with your package manager (Debian names above), or set AIOT_SIM_SKIP_PREREQS=1 to run the tests anyway.`);
  process.exit(1);
}
const root = typeof process.getuid === 'function' && process.getuid() === 0;
const hasSudo = canRun('sh', ['-c', 'command -v sudo']);
const sudo = !root && hasSudo && canRun('sudo', ['-n', 'true']);
// The command to give a person: with sudo where there is one, else as root through su.
const byHand = hasSudo ? `sudo sh -c '${install}'` : `su -c '${install}'    (as root: this machine has no sudo)`;
if (!root && !sudo) {
  say(`missing ${missing.join(', ')}. Run this once, then npm test again:\n  ${byHand}`);
  process.exit(1);
}
say(`installing ${missing.join(', ')} with apt-get (a few minutes: Chromium and its libraries are large) ...`);
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
const aptGet = (args) => (root
  ? execFileSync('apt-get', args, { stdio: ['ignore', 'ignore', 'inherit'], env })
  : execFileSync('sudo', ['-n', 'apt-get', ...args], { stdio: ['ignore', 'ignore', 'inherit'], env }));
try {
  aptGet(['update', '-qq']);
  aptGet(['install', '-y', '-qq', '--no-install-recommends', ...missing]);
} catch (err) {
  say(`apt-get failed (${err.message.split('\n')[0]}). Run it by hand:\n  ${root ? `sh -c '${install}'` : byHand}`);
  process.exit(1);
}
const still = missingPackages();
if (still.length) {
  say(`still missing after apt-get: ${still.join(', ')}`);
  process.exit(1);
}
// The services apt-get started for the packages just installed (systemd machines only).
const SERVICES = { mosquitto: 'mosquitto', 'redis-server': 'redis-server' };
if (existsSync('/run/systemd/system')) {
  for (const unit of missing.map((p) => SERVICES[p]).filter(Boolean)) {
    const args = ['disable', '--now', '--quiet', unit];
    const stopped = root ? canRun('systemctl', args) : canRun('sudo', ['-n', 'systemctl', ...args]);
    say(stopped
      ? `stopped and disabled the ${unit} service apt-get started (the tests start their own${unit === 'mosquitto' ? '; it held port 1883, which aiot-sim run uses' : ''}); to have it back: systemctl enable --now ${unit}`
      : `could not stop the ${unit} service apt-get started${unit === 'mosquitto' ? ': it holds port 1883, which aiot-sim run uses by default (--mqtt-port P for another)' : ''}`);
  }
}
say('ready');
