/**
 * aiot-sim as a library: start a scenario from code, read the platform, command devices,
 * advance or stop the virtual clock.
 */
export { createSimulation, Simulation, SYS_PLATFORM_TOPIC, type SimulationOptions, type SimulationStatus } from './sim/simulation.js';
export { createShardedSimulation, ShardedSimulation, type ShardedOptions } from './sim/sharded.js';
export type { RunReport, ScaledFigures } from './sim/report.js';
export { loadScenario, checkScenario, parseDuration, ScenarioSpec, type Scenario } from './catalog/scenario.js';
export { buildPopulation, shardPopulation, type Population, type Home, type DevicePlan } from './sim/population.js';
export { EventScheduler } from './sim/scheduler.js';
export type { Clock, Scheduler, TimerHandle } from './contract/clock.js';
export type { Random } from './contract/random.js';
export { Rng } from './sim/rng.js';
export { REGIONS, type Region } from './catalog/regions.js';
export { EmbeddedBroker, type BrokerOptions, type BrokerCounters, type ClientInfo, type Transport } from './broker/broker.js';
export { AccessDirectory, TELEMETRY_FILTERS, type AnonymousAccess, type Principal } from './broker/access.js';
export { DEFAULT_LIMITS, type BrokerLimits, type LimitHits, type LimitReport, type LimitUsage, type ResolvedLimits } from './broker/limits.js';
export { Catalog, loadCatalog } from './catalog/catalog.js';
export { DeviceModelSpec, type DeviceModel, type PropertySpec, type ServiceSpec, type BehaviourSpec, type Category } from './catalog/schema.js';
export { Device, type DeviceLink, type DeviceOptions } from './device/device.js';
export {
  topics, parseDeviceTopic, readDeviceMessage, encodeProperty, encodeEvent, deviceFilters, MiotCode, RpcErrorCode,
  WIRE_PROFILES, DEFAULT_WIRE, HUB_PREFIX, DEVICE_FILTERS,
  type Scalar, type WireProfile, type WireMessage, type DeviceTopic, type DeviceMessage, type WireProblem,
  type PropertyChange, type EventOccurrence, type EventArgument, type PropertiesChangedPayload, type EventOccuredPayload,
  type HubPropertyPayload, type HubEventPayload, type StatePayload, type RpcRequest, type RpcResponse,
  type PropertyResult, type ActionResult,
} from './contract/wire.js';
export { PlatformService, type PlatformSnapshot } from './platform/service.js';
export type { ConnectionCounts, DeviceFacts, DeviceLookup } from './platform/registry.js';
export { RedisStore, type RedisStoreOptions, type StoreHealth } from './platform/redis-store.js';
export type { PlatformStore, SharedStore } from './platform/store.js';
export { EventDeduper, type DedupStats, type SeqVerdict } from './platform/dedup.js';
export type { OnlineBucket } from './platform/history.js';
export { FaultTimeline, type FaultNotice, type FaultRecord, type FaultRecordOf, type FaultDetails, type FaultType } from './sim/faults.js';
export { Backoff, DEFAULT_RECONNECT, type ReconnectPolicy } from './sim/backoff.js';
export { DEFAULT_MAX_PACKET_SIZE } from './broker/packet-guard.js';
export { PACKAGE_ROOT } from './paths.js';
export { AiotSimError, ValidationError, OptionsError, type Problem, type OptionProblem } from './errors.js';
export {
  MonitorServer, monitorSimulation, monitorShardedSimulation, simulationCommander, FilterIndex, filterProblem,
  type MonitorOptions, type SimulationMonitorOptions, type HubOptions, type MonitorClientInfo, type DeviceCommander,
  type DeviceDescription, type DeviceSummary, type PropertyInfo, type MonitoredBroker, type MonitoredPlatform,
} from './monitor/index.js';
export type {
  ServerFrame, ClientFrame, SnapshotFrame, StatsFrame, MessageFrame, DroppedFrame, SubscribedFrame, UnsubscribedFrame,
  PongFrame, ErrorFrame, FaultFrame, SubscribeRequest, UnsubscribeRequest, PingRequest, MonitorStats,
} from './monitor/protocol.js';
export { runBench, BenchError, type BenchOptions, type BenchProgress } from './load/bench.js';
export { findMaxRate, type SearchOptions, type SearchResult, type SearchStep } from './load/search.js';
export { parseSlo, checkSlo, SloSyntaxError, type SloTerm, type SloCheck } from './load/slo.js';
export type { BenchReport, TimelinePoint, LatencyMs } from './load/report.js';
export type { OverloadOptions, OverloadStats } from './broker/overload.js';
export { runReplay, type ReplayOptions, type ReplayProgress } from './replay/replay.js';
export type { ReplayReport, ReplayTimelinePoint } from './replay/report.js';
export { Recorder, type RecordOptions, type RecordSummary } from './replay/recorder.js';
export { formatRecordLine, parseRecordLine, type RecordedMessage, type QoS } from './contract/recording.js';
