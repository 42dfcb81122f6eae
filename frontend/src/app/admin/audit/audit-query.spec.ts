import {
  DEFAULT_PAGE_SIZE,
  FIRST_PAGE,
  actionOptions,
  apiQuery,
  currentCursor,
  filtersFromForm,
  formFromFilters,
  localToUtc,
  nextPage,
  pageNumber,
  previousPage,
  sameView,
  utcOffset,
  utcToLocal,
  viewFromParams,
  viewToParams,
} from './audit-query';
import { EMPTY_FORM } from './audit-query';

// The expected UTC moments are computed from local dates, so these pass in any time zone (CI runs
// in UTC, a laptop maybe not).
const utcOf = (...local: [number, number, number, number, number, number?]) =>
  new Date(local[0], local[1] - 1, local[2], local[3], local[4], local[5] ?? 0)
    .toISOString()
    .replace('.000Z', 'Z');

describe('audit-query: times', () => {
  it('reads a datetime-local value as local time and gives it in UTC', () => {
    expect(localToUtc('2030-01-02T03:04')).toBe(utcOf(2030, 1, 2, 3, 4));
    expect(localToUtc('2030-07-02T23:59:30')).toBe(utcOf(2030, 7, 2, 23, 59, 30));
    expect(localToUtc('2030-07-02T23:59:30')).toMatch(/Z$/);
  });

  it('refuses what is not a datetime-local value', () => {
    expect(localToUtc('')).toBeNull();
    expect(localToUtc('yesterday')).toBeNull();
    expect(localToUtc('2030-01-02')).toBeNull();
  });

  it('shows a UTC moment in local time, the way the input takes it', () => {
    expect(utcToLocal(utcOf(2030, 1, 2, 3, 4))).toBe('2030-01-02T03:04');
    expect(utcToLocal(utcOf(2030, 12, 31, 22, 5, 9))).toBe('2030-12-31T22:05:09');
    expect(utcToLocal('not a time')).toBe('');
  });

  it('names the offset from UTC', () => {
    const at = (offsetMinutes: number) => ({ getTimezoneOffset: () => offsetMinutes }) as Date;
    expect(utcOffset(at(-120))).toBe('UTC+02:00');
    expect(utcOffset(at(0))).toBe('UTC+00:00');
    expect(utcOffset(at(330))).toBe('UTC-05:30');
  });
});

describe('audit-query: the form', () => {
  it('keeps what is filled in, trimmed, with the times in UTC', () => {
    const result = filtersFromForm({
      actor: 'u-1',
      action: ' user.invited ',
      targetType: 'user',
      targetId: '',
      from: '2030-01-02T03:04',
      until: '2030-01-03T00:00',
    });

    expect(result).toEqual({
      filters: {
        actor_id: 'u-1',
        action: 'user.invited',
        target_type: 'user',
        since: utcOf(2030, 1, 2, 3, 4),
        until: utcOf(2030, 1, 3, 0, 0),
      },
    });
  });

  it('gives no filters for an empty form', () => {
    expect(filtersFromForm(EMPTY_FORM)).toEqual({ filters: {} });
  });

  it('refuses an "Until" that is not later than "From"', () => {
    const form = { ...EMPTY_FORM, from: '2030-01-02T03:04', until: '2030-01-02T03:04' };
    expect(filtersFromForm(form)).toEqual({ error: '"Until" must be later than "From".' });
  });

  it('refuses a time it cannot read', () => {
    expect(filtersFromForm({ ...EMPTY_FORM, from: '2030-13-45' })).toEqual({
      error: '"From" is not a date and time.',
    });
  });

  it('fills the form back from the filters, times in local time', () => {
    expect(
      formFromFilters({ action: 'auth.login', since: utcOf(2030, 1, 2, 3, 4), target_id: 'x' }),
    ).toEqual({
      ...EMPTY_FORM,
      action: 'auth.login',
      targetId: 'x',
      from: '2030-01-02T03:04',
    });
  });
});

describe('audit-query: the URL and the API', () => {
  it('reads the view from the URL query, dropping what it cannot use', () => {
    const view = viewFromParams({
      action: 'user.invited',
      target_type: ' ',
      since: '2030-01-02T03:04:00+02:00',
      until: 'never',
      limit: '25',
      other: 'x',
    });

    expect(view).toEqual({
      filters: { action: 'user.invited', since: '2030-01-02T01:04:00Z' },
      limit: 25,
    });
    expect(viewFromParams({ limit: '7' }).limit).toBe(DEFAULT_PAGE_SIZE);
    expect(viewFromParams({}).limit).toBe(DEFAULT_PAGE_SIZE);
  });

  it('writes only the filters set, and the page size when not the default', () => {
    expect(viewToParams({ filters: { actor_id: 'u-1' }, limit: DEFAULT_PAGE_SIZE })).toEqual({
      actor_id: 'u-1',
    });
    expect(viewToParams({ filters: {}, limit: 100 })).toEqual({ limit: '100' });
  });

  it('goes from the URL and back unchanged', () => {
    const params = { actor_id: 'u-1', since: '2030-01-02T01:04:00Z', limit: '100' };
    expect(viewToParams(viewFromParams(params))).toEqual(params);
  });

  it('compares views by their filters and size', () => {
    expect(
      sameView({ filters: { action: 'a' }, limit: 25 }, { filters: { action: 'a' }, limit: 25 }),
    ).toBe(true);
    expect(sameView({ filters: { action: 'a' }, limit: 25 }, { filters: {}, limit: 25 })).toBe(
      false,
    );
    expect(sameView({ filters: {}, limit: 25 }, { filters: {}, limit: 50 })).toBe(false);
  });

  it('asks the API for the filters, the size and the cursor', () => {
    const view = {
      filters: { action: 'auth.login', until: '2030-01-02T00:00:00Z' },
      limit: 25 as const,
    };
    expect(apiQuery(view, null)).toEqual({
      action: 'auth.login',
      until: '2030-01-02T00:00:00Z',
      limit: 25,
    });
    expect(apiQuery(view, 'c2')).toEqual({
      action: 'auth.login',
      until: '2030-01-02T00:00:00Z',
      limit: 25,
      cursor: 'c2',
    });
  });
});

describe('audit-query: paging', () => {
  it('goes forward with each next_cursor and back the same way', () => {
    let stack = FIRST_PAGE;
    expect([pageNumber(stack), currentCursor(stack)]).toEqual([1, null]);

    stack = nextPage(stack, 'c2');
    stack = nextPage(stack, 'c3');
    expect([pageNumber(stack), currentCursor(stack)]).toEqual([3, 'c3']);

    stack = previousPage(stack);
    expect([pageNumber(stack), currentCursor(stack)]).toEqual([2, 'c2']);
    stack = previousPage(stack);
    expect([pageNumber(stack), currentCursor(stack)]).toEqual([1, null]);
    expect(previousPage(stack)).toEqual([]);
  });

  it('stays on the last page when there is no next cursor', () => {
    expect(nextPage(['c2'], null)).toEqual(['c2']);
  });
});

describe('audit-query: actions', () => {
  it('offers the known actions and those seen, once each, sorted', () => {
    const options = actionOptions(['user.invited', 'zzz.new_thing', 'aaa.first']);
    expect(options[0]).toBe('aaa.first');
    expect(options.at(-1)).toBe('zzz.new_thing');
    expect(options.filter((a) => a === 'user.invited')).toHaveLength(1);
  });
});
