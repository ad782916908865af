/** Markets a population lives in, each with its time zone (daily rhythms follow local time). */

/** Market groups: what the platform also reports by, and what a device model is sold in. */
export const MARKET_GROUPS = ['china', 'europe', 'latin-america', 'asia', 'north-america'] as const;
export type MarketGroup = (typeof MARKET_GROUPS)[number];

/** A device model's markets: market groups, or `global` for every one of them. */
export const MARKETS = [...MARKET_GROUPS, 'global'] as const;
export type Market = (typeof MARKETS)[number];

export interface Region {
  id: string;
  name: string;
  /** Market group the platform also reports by; device models are dealt to homes by it. */
  group: MarketGroup;
  timeZone: string;
}

export const REGIONS: readonly Region[] = [
  { id: 'cn', name: 'China', group: 'china', timeZone: 'Asia/Shanghai' },
  { id: 'es', name: 'Spain', group: 'europe', timeZone: 'Europe/Madrid' },
  { id: 'it', name: 'Italy', group: 'europe', timeZone: 'Europe/Rome' },
  { id: 'fr', name: 'France', group: 'europe', timeZone: 'Europe/Paris' },
  { id: 'de', name: 'Germany', group: 'europe', timeZone: 'Europe/Berlin' },
  { id: 'gb', name: 'United Kingdom', group: 'europe', timeZone: 'Europe/London' },
  { id: 'pl', name: 'Poland', group: 'europe', timeZone: 'Europe/Warsaw' },
  { id: 'mx', name: 'Mexico', group: 'latin-america', timeZone: 'America/Mexico_City' },
  { id: 'br', name: 'Brazil', group: 'latin-america', timeZone: 'America/Sao_Paulo' },
  { id: 'co', name: 'Colombia', group: 'latin-america', timeZone: 'America/Bogota' },
  { id: 'cl', name: 'Chile', group: 'latin-america', timeZone: 'America/Santiago' },
  { id: 'in', name: 'India', group: 'asia', timeZone: 'Asia/Kolkata' },
  { id: 'us', name: 'United States', group: 'north-america', timeZone: 'America/New_York' },
];

export const REGION_IDS = REGIONS.map((r) => r.id) as [string, ...string[]];

export function region(id: string): Region {
  const r = REGIONS.find((x) => x.id === id);
  if (!r) throw new RangeError(`unknown region "${id}"`);
  return r;
}

/** Whether a model sold in `markets` is sold in region `id` (an unknown region: nowhere). */
export function soldIn(markets: readonly Market[], id: string): boolean {
  const group = REGIONS.find((x) => x.id === id)?.group;
  return group !== undefined && (markets.includes('global') || markets.includes(group));
}
