import type { Usage } from '../../api';
import { tickLabel } from './usage-chart';
import {
  bucketDays,
  buckets,
  chartSeries,
  csvFileName,
  dayCount,
  niceMax,
  rangeOf,
  thisMonth,
} from './usage-buckets';

const usage = (...rows: [string | null, string, number][]): Usage => ({
  from: '2030-01-01T00:00:00Z',
  until: '2030-01-02T00:00:00Z',
  items: rows.map(([id, name, gpu_hours]) => ({ key: { id, name }, gpu_hours, assignments: 1 })),
});

describe('usage buckets', () => {
  it('reads the days as a UTC range, the last day included', () => {
    expect(rangeOf('2030-01-01', '2030-01-31')).toEqual({
      from: '2030-01-01T00:00:00Z',
      until: '2030-02-01T00:00:00Z',
    });
    expect(dayCount('2030-01-01', '2030-01-01')).toBe(1);
    expect(dayCount('2030-01-02', '2030-01-01')).toBe(0);
  });

  it('defaults to this month so far', () => {
    expect(thisMonth(new Date('2030-03-17T22:10:00Z'))).toEqual({
      from: '2030-03-01',
      until: '2030-03-17',
    });
  });

  it('makes one bucket a day up to 31 days', () => {
    const list = buckets('2030-01-01', '2030-01-31');
    expect(list).toHaveLength(31);
    expect(list[0]).toEqual({
      from: '2030-01-01T00:00:00Z',
      until: '2030-01-02T00:00:00Z',
      label: '2030-01-01',
    });
    expect(list[30].until).toBe('2030-02-01T00:00:00Z');
    expect(buckets('2030-01-05', '2030-01-04')).toEqual([]);
  });

  it('makes weeks beyond 31 days, the last cut at the end, and never more than 31 buckets', () => {
    const list = buckets('2030-01-01', '2030-03-01'); // 60 days
    expect(bucketDays(60)).toBe(7);
    expect(list).toHaveLength(9);
    expect(list[1].from).toBe('2030-01-08T00:00:00Z');
    expect(list[8]).toEqual({
      from: '2030-02-26T00:00:00Z',
      until: '2030-03-02T00:00:00Z',
      label: '2030-02-26',
    });
    expect(bucketDays(31 * 7 + 1)).toBe(8);
    expect(buckets('2029-01-01', '2030-12-31').length).toBeLessThanOrEqual(31);
  });

  it('stacks the keys with the most GPU-hours, the rest as others', () => {
    const list = buckets('2030-01-01', '2030-01-02');
    const { keys, stacks } = chartSeries(
      list,
      [usage(['a', 'ada', 5], ['b', 'bob', 1], ['c', 'cy', 0.5]), usage(['b', 'bob', 3])],
      2,
    );
    expect(keys).toEqual([
      { id: 'a', name: 'ada' },
      { id: 'b', name: 'bob' },
      { id: null, name: 'others' },
    ]);
    expect(stacks).toEqual([
      { label: '2030-01-01', values: [5, 1, 0.5], total: 6.5 },
      { label: '2030-01-02', values: [0, 3, 0], total: 3 },
    ]);
  });

  it('keeps a key without an id (no group) apart by its name', () => {
    const { keys } = chartSeries(buckets('2030-01-01', '2030-01-01'), [
      usage([null, '(no group)', 2], ['g', 'physics', 1]),
    ]);
    expect(keys.map((k) => k.name)).toEqual(['(no group)', 'physics']);
  });

  it('rounds the axis up and names the CSV file after the range', () => {
    expect(niceMax(0)).toBe(1);
    expect(niceMax(7.2)).toBe(10);
    expect(niceMax(130)).toBe(200);
    expect(niceMax(0.3)).toBe(0.5);
    expect(csvFileName('2030-01-01', '2030-01-31')).toBe('gpulab-usage-2030-01-01-2030-01-31.csv');
  });
});

describe('the chart axis', () => {
  it('labels each tick with the decimals its step needs, so that no two read alike', () => {
    const labels = (top: number) => [0, 1, 2, 3, 4].map((i) => tickLabel((top * i) / 4, top / 4));
    expect(labels(0.02)).toEqual(['0', '0.005', '0.01', '0.015', '0.02']);
    expect(labels(1)).toEqual(['0', '0.25', '0.5', '0.75', '1']);
    expect(labels(100)).toEqual(['0', '25', '50', '75', '100']);
  });
});
