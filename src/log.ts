/** One logger for the library (pino, JSON to stderr), namespaced per part. Level: AIOT_SIM_LOG (default "warn"). */
import { pino, type Logger } from 'pino';

export const rootLogger: Logger = pino({ name: 'aiot-sim', level: process.env['AIOT_SIM_LOG'] ?? 'warn' }, pino.destination(2));

export function logger(ns: string): Logger {
  return rootLogger.child({ ns });
}
