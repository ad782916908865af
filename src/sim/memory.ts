/**
 * Will a population fit? Estimated before anything connects, from bytes per device measured for
 * each way devices reach the broker (the benchmark's `fleet` figure, bench/README.md), against
 * the memory this process can have: V8's heap limit (bin/ sizes it to the machine, cli/heap.ts)
 * and the memory the machine has available. A run that cannot fit is refused with what to do,
 * instead of dying with "JavaScript heap out of memory" minutes into connecting.
 */
import { freemem, totalmem } from 'node:os';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { AiotSimError } from '../errors.js';

/** How device sessions reach the broker, as far as memory goes. */
export type MemoryTransport = 'in-process' | 'in-process-clients' | 'socket';

/**
 * Measured costs on consumer-load's mix of Wi-Fi devices, hubs and their children (Node 20):
 * heap per device after connecting and peak resident bytes per device while connecting (the
 * bench's `fleet` figure at 106,000 devices: 44 KB with an mqtt.js client per device), children
 * included, with the broker's share (Aedes client, persistence, retained state) and the
 * platform's; per app user (an mqtt.js client and its broker session, measured before in-process
 * app users became fleet sessions, which cost less: the estimate errs high for them); and what a
 * run holds before its population. Sockets add kernel buffers.
 *
 * In-process (the fleet engine), measured again at build 0cb5490 and given about a fifth more:
 * 8.7 KB of heap a device after connecting (the difference between 1,000 and 3,000 homes without
 * app users: 114.1 and 289.3 MB), and 13.2 KB of peak RSS a device at 106,000 devices (10.4 KB
 * at 500,000).
 */
export const MEMORY_COSTS = {
  perDevice: {
    'in-process': { heap: 11_000, rss: 16_000 },
    'in-process-clients': { heap: 22_000, rss: 44_000 },
    socket: { heap: 24_000, rss: 48_000 },
  },
  perAppUser: { heap: 25_000, rss: 26_000 },
  base: { heap: 60 * 2 ** 20, rss: 150 * 2 ** 20 },
} as const;

export interface MemoryEstimate {
  devices: number;
  appUsers: number;
  transport: MemoryTransport;
  /** Heap the population will need (bytes). */
  heapBytes: number;
  /** Resident memory the run will need (bytes). */
  rssBytes: number;
}

export interface MemoryRoom {
  /** V8's heap limit for this process (bytes). */
  heapLimitBytes: number;
  /** Memory the process can have: what the machine has available now plus what it holds (bytes). */
  availableBytes: number;
  /** The machine's memory (bytes). */
  totalBytes: number;
  /** A limit the caller set (SimulationOptions.memoryLimit), bytes. */
  limitBytes?: number;
}

export function estimateMemory(devices: number, appUsers: number, transport: MemoryTransport): MemoryEstimate {
  const d = MEMORY_COSTS.perDevice[transport];
  const a = MEMORY_COSTS.perAppUser;
  const b = MEMORY_COSTS.base;
  return {
    devices, appUsers, transport,
    heapBytes: b.heap + devices * d.heap + appUsers * a.heap,
    rssBytes: b.rss + devices * d.rss + appUsers * a.rss,
  };
}

/** The room this process has now (see MemoryRoom). */
export function memoryRoom(limitBytes?: number): MemoryRoom {
  const room: MemoryRoom = {
    heapLimitBytes: getHeapStatistics().heap_size_limit,
    // os.freemem() is the kernel's MemAvailable on Linux (page cache it can drop counts as available).
    availableBytes: freemem() + process.memoryUsage().rss,
    totalBytes: totalmem(),
  };
  if (limitBytes !== undefined) room.limitBytes = limitBytes;
  return room;
}

const gb = (n: number): string => `${(n / 2 ** 30).toFixed(n < 2 ** 30 ? 2 : 1)} GB`;

/** Throws E_MEMORY, saying what to do, when `need` does not fit in `room`. */
export function checkMemory(need: MemoryEstimate, room: MemoryRoom): void {
  const limits: Array<[string, number, number]> = [
    ['V8 heap limit', room.heapLimitBytes, need.heapBytes],
    ['memory available', room.availableBytes, need.rssBytes],
  ];
  if (room.limitBytes !== undefined) limits.push(['memory limit', room.limitBytes, need.rssBytes]);
  const short = limits.filter(([, have, needs]) => needs > have);
  if (!short.length) return;
  const who = `${need.devices.toLocaleString('en-US')} devices${need.appUsers ? ` and ${need.appUsers.toLocaleString('en-US')} app users` : ''}`;
  const why = short.map(([name, have, needs]) => `needs about ${gb(needs)}, ${name} ${gb(have)}`).join('; ');
  throw new AiotSimError('E_MEMORY', 'environment',
    `this population does not fit in this process: ${who} over the ${need.transport} transport (${why}; the machine has ${gb(room.totalBytes)}). `
    + 'Nothing was connected. Run fewer homes (population.homes), split the homes over several processes or machines '
    + '(shards: each process simulates one share of the homes), or free memory on this machine.');
}

/** Devices in one process from which V8 frees dead Buffers' memory on the main thread (see below). */
export const MAIN_THREAD_SWEEP_DEVICES = 200_000;

/**
 * For a population of MAIN_THREAD_SWEEP_DEVICES or more in this process: have V8 free the memory
 * of the ArrayBuffers (under Node's Buffers) a young-generation collection found dead on the main
 * thread, as the collection ends, instead of on a background thread (the process-wide V8 flag
 * `--no-concurrent-array-buffer-sweeping`, which V8 reads at each sweep, so it can be set now).
 * Until that thread has freed them V8 counts them as alive, and memory outside the heap that grew
 * by 64 MB since the last full collection starts another one, its marking done in steps at each
 * Buffer allocation. On a machine whose cores are busy the background thread falls behind: with
 * 500,002 devices coming online beside a busy process the count swung between 76 and 146 MB and
 * V8 ran a full collection every 6-7 s (19 in the bring-up, 58.8 s of announcing), against 5
 * collections and 24.5 s with the flag (the count flat at 73-77 MB). A full collection of a heap
 * that large takes seconds; a smaller run's takes little, and there the flag cost about 5 % more
 * CPU (consumer-load, 24 h fast, medians of 4 runs each: 26.4 against 25.2 s). `devices`: every
 * device this process simulates (all shards, when worker threads share it: the flag is the
 * process's).
 */
export function sweepArrayBuffersOnMainThread(devices: number): void {
  if (devices >= MAIN_THREAD_SWEEP_DEVICES) setFlagsFromString('--no-concurrent-array-buffer-sweeping');
}
