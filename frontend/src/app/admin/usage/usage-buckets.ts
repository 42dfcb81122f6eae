import type { Usage } from '../../api';

// The usage page's time buckets and chart series. The range is a pair of calendar days in UTC (the
// server counts months in UTC too), `until` included; the API's `until` is excluded, so it is the
// next day's midnight. The chart asks GET /usage once per bucket, so there are at most 31 buckets.

export const MAX_BUCKETS = 31;
const DAY_MS = 86_400_000;
/** Keys drawn in their own colour; the rest are summed as "others". */
export const TOP_KEYS = 6;

export interface Bucket {
  /** RFC 3339, included. */
  from: string;
  /** RFC 3339, excluded. */
  until: string;
  /** The bucket's first day, YYYY-MM-DD. */
  label: string;
}

function dayStart(day: string): number {
  const t = Date.parse(`${day}T00:00:00Z`);
  if (Number.isNaN(t)) {
    throw new Error(`not a day: ${day}`);
  }
  return t;
}

const iso = (t: number) => new Date(t).toISOString().replace('.000Z', 'Z');
const dayOf = (t: number) => new Date(t).toISOString().slice(0, 10);

/** The API's range for the days `from` to `until`, both included. */
export function rangeOf(from: string, until: string): { from: string; until: string } {
  return { from: iso(dayStart(from)), until: iso(dayStart(until) + DAY_MS) };
}

/** The days of the range in order (from, until included); empty when until is before from. */
export function dayCount(from: string, until: string): number {
  return Math.max(0, Math.round((dayStart(until) + DAY_MS - dayStart(from)) / DAY_MS));
}

/** How many days each bucket spans: one a day up to 31 days, a week up to 31 weeks, else wider. */
export function bucketDays(days: number): number {
  if (days <= MAX_BUCKETS) {
    return 1;
  }
  if (Math.ceil(days / 7) <= MAX_BUCKETS) {
    return 7;
  }
  return Math.ceil(days / MAX_BUCKETS);
}

/** The buckets of the range: whole days or weeks from `from`, the last one cut at the range's end. */
export function buckets(from: string, until: string): Bucket[] {
  const days = dayCount(from, until);
  if (days === 0) {
    return [];
  }
  const step = bucketDays(days) * DAY_MS;
  const start = dayStart(from);
  const end = dayStart(until) + DAY_MS;
  const out: Bucket[] = [];
  for (let t = start; t < end; t += step) {
    out.push({ from: iso(t), until: iso(Math.min(t + step, end)), label: dayOf(t) });
  }
  return out;
}

/** The first day of this month and today, in UTC: the page's default range. */
export function thisMonth(now = new Date()): { from: string; until: string } {
  const today = now.toISOString().slice(0, 10);
  return { from: `${today.slice(0, 8)}01`, until: today };
}

export interface SeriesKey {
  id: string | null;
  name: string;
}

export interface Stack {
  label: string;
  /** GPU-hours per key, in the order of `keys`. */
  values: number[];
  total: number;
}

/**
 * The chart's series: the keys with the most GPU-hours over the whole range get their own colour
 * (at most TOP_KEYS), everything else is summed as "others".
 */
export function chartSeries(
  bucketList: readonly Bucket[],
  usages: readonly Usage[],
  top = TOP_KEYS,
): { keys: SeriesKey[]; stacks: Stack[] } {
  const totals = new Map<string, { key: SeriesKey; hours: number }>();
  const idOf = (k: SeriesKey) => k.id ?? `name:${k.name}`;
  for (const usage of usages) {
    for (const item of usage.items) {
      const id = idOf(item.key);
      const entry = totals.get(id) ?? { key: { id: item.key.id, name: item.key.name }, hours: 0 };
      entry.hours += item.gpu_hours;
      totals.set(id, entry);
    }
  }
  const ranked = [...totals.values()]
    .filter((e) => e.hours > 0)
    .sort((a, b) => b.hours - a.hours || a.key.name.localeCompare(b.key.name));
  const shown = ranked.slice(0, top).map((e) => e.key);
  const rest = ranked.length > top;
  const keys = rest ? [...shown, { id: null, name: 'others' }] : shown;
  const index = new Map(shown.map((k, i) => [idOf(k), i]));
  const stacks = bucketList.map((bucket, i) => {
    const values = keys.map(() => 0);
    for (const item of usages[i]?.items ?? []) {
      const at = index.get(idOf(item.key)) ?? (rest ? keys.length - 1 : -1);
      if (at >= 0) {
        values[at] += item.gpu_hours;
      }
    }
    return { label: bucket.label, values, total: values.reduce((a, b) => a + b, 0) };
  });
  return { keys, stacks };
}

/** A round top for the chart's axis: 1, 2 or 5 times a power of ten, at least the largest value. */
export function niceMax(value: number): number {
  if (value <= 0) {
    return 1;
  }
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) {
    if (step * power >= value) {
      return step * power;
    }
  }
  return 10 * power;
}

/** The CSV file's name: `gpulab-usage-<from>-<until>.csv`. */
export function csvFileName(from: string, until: string): string {
  return `gpulab-usage-${from}-${until}.csv`;
}
