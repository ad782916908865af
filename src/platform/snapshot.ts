/** The platform's figures (`PlatformSnapshot`), and how they are made from its counts. */
import type { ActivityWindow } from './activity.js';
import type { ConnectionCounts } from './registry.js';

export interface PlatformSnapshot {
  /** Latest event time seen (virtual epoch ms), or null before any. */
  eventTime: number | null;
  connections: ConnectionCounts;
  /** Devices used on the latest event-time day (UTC): commanded, or reporting an event. */
  dailyActiveDevices: number;
  /**
   * The mean of daily active devices over the 7 whole event-time days before the latest (fewer
   * early in a run; null on the first day): the daily figure with a week of day-to-day noise
   * averaged out, for comparing a scaled-down population with a published daily figure.
   */
  dailyActiveDevicesWeekMean: number | null;
  /** Users with an app session or a voice request in the last 1 / 7 / 30 event-time days. */
  activeUsers: { dau: number; wau: number; mau: number };
  /** People who spoke to a speaker in the last 30 days (the user id a voice request carries). */
  speakerMau: number;
  /** Users with an app session in the last 30 days. */
  appMau: number;
  /** Owners with more than five devices among those the platform has seen online. */
  ownersWithMoreThan5Devices: number;
  messages: {
    /** Device messages observed, by kind. */
    byKind: Record<string, number>;
    /** Device messages the platform could not use (bad JSON, wrong shape, did mismatch). */
    malformed: number;
    /** Events seen again (same did and seq, QoS 1 redelivery) and removed. */
    duplicatesRemoved: number;
    /** Event sequence numbers skipped over and not (yet) received, over all devices. */
    eventsMissing: number;
  };
}

/** What a snapshot is made of. */
export interface Parts {
  eventTime: number | null;
  connections: ConnectionCounts;
  ownersOver5: number;
  activeDevices: ActivityWindow;
  activeUsers: ActivityWindow;
  voiceUsers: ActivityWindow;
  appUsers: ActivityWindow;
  messages: PlatformSnapshot['messages'];
}

export function figures(p: Parts): PlatformSnapshot {
  return {
    eventTime: p.eventTime,
    connections: p.connections,
    dailyActiveDevices: p.activeDevices.count(1),
    dailyActiveDevicesWeekMean: p.activeDevices.averageDaily(7),
    activeUsers: { dau: p.activeUsers.count(1), wau: p.activeUsers.count(7), mau: p.activeUsers.count(30) },
    speakerMau: p.voiceUsers.count(30),
    appMau: p.appUsers.count(30),
    ownersWithMoreThan5Devices: p.ownersOver5,
    messages: p.messages,
  };
}

/** A snapshot before anything was seen. */
export function emptySnapshot(): PlatformSnapshot {
  return {
    eventTime: null, connections: { online: 0, byCategory: {}, byModel: {}, byRegion: {}, byTransport: {} },
    dailyActiveDevices: 0, dailyActiveDevicesWeekMean: null, activeUsers: { dau: 0, wau: 0, mau: 0 },
    speakerMau: 0, appMau: 0, ownersWithMoreThan5Devices: 0,
    messages: { byKind: {}, malformed: 0, duplicatesRemoved: 0, eventsMissing: 0 },
  };
}
