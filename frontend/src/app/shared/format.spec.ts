import { formatAgo, formatMb, formatSpan } from './format';

describe('formats', () => {
  it('shows RAM as a person reads it', () => {
    expect(formatMb(0)).toBe('no limit');
    expect(formatMb(512)).toBe('512 MiB');
    expect(formatMb(16384)).toBe('16 GiB');
    expect(formatMb(1536)).toBe('1.5 GiB');
    expect(formatMb(2 * 1024 * 1024)).toBe('2 TiB');
    expect(formatMb(null)).toBe('—');
  });

  it('shows a span coarsely', () => {
    expect(formatSpan(12_400)).toBe('12 s');
    expect(formatSpan(250_000)).toBe('4 min 10 s');
    expect(formatSpan(2 * 3600_000 + 5 * 60_000)).toBe('2 h 5 min');
    expect(formatSpan(3 * 86400_000 + 4 * 3600_000)).toBe('3 d 4 h');
    expect(formatSpan(-5000)).toBe('0 s');
  });

  it('says how long ago', () => {
    const now = Date.parse('2030-01-02T00:00:00Z');
    expect(formatAgo('2030-01-01T23:59:55Z', now)).toBe('5 s ago');
    expect(formatAgo('2030-01-01T23:57:00Z', now)).toBe('3 min ago');
    expect(formatAgo('2029-12-20T00:00:00Z', now)).toBe('2029-12-20');
    expect(formatAgo(null, now)).toBe('never');
  });
});
