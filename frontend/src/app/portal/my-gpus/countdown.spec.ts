import { ComponentFixture, TestBed } from '@angular/core/testing';

import { Countdown } from './countdown';

const NOW = Date.parse('2030-01-01T12:00:00Z');
const HOUR = 3600_000;

describe('Countdown', () => {
  let fixture: ComponentFixture<Countdown>;

  // Only the clock and the interval are fake: Angular's own scheduling keeps its real timers.
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] });
    vi.setSystemTime(NOW);
  });
  afterEach(() => vi.useRealTimers());

  async function show(until: string | null): Promise<HTMLElement> {
    fixture = TestBed.createComponent(Countdown);
    fixture.componentRef.setInput('until', until);
    await fixture.whenStable();
    return fixture.nativeElement as HTMLElement;
  }

  const text = () =>
    (fixture.nativeElement as HTMLElement)
      .querySelector('[data-testid=countdown]')
      ?.textContent?.replace(/\s+/g, ' ')
      .trim();

  async function tick(ms: number): Promise<void> {
    vi.advanceTimersByTime(ms);
    await fixture.whenStable();
  }

  it('says "no expiry" when there is none', async () => {
    await show(null);
    expect(text()).toBe('no expiry');
    await tick(5000);
    expect(text()).toBe('no expiry');
  });

  it('counts down every second', async () => {
    const el = await show(new Date(NOW + 90_000).toISOString());
    expect(text()).toContain('in 1 min 30 s');
    expect(el.querySelector('time')?.getAttribute('datetime')).toBe('2030-01-01T12:01:30.000Z');

    await tick(1000);
    expect(text()).toContain('in 1 min 29 s');
    await tick(29_000);
    expect(text()).toContain('in 1 min 0 s');
    await tick(60_000);
    expect(text()).toBe('ending now');
  });

  it('is calm with more than a day left', async () => {
    const el = await show(new Date(NOW + 3 * 24 * HOUR + 4 * HOUR).toISOString());
    expect(text()).toBe('in 3 d 4 h');
    expect(el.querySelector('time')?.classList.contains('soon')).toBe(false);
  });

  it('warns, in words too, under 24 hours', async () => {
    const el = await show(new Date(NOW + 24 * HOUR + 2000).toISOString());
    expect(el.querySelector('time')?.classList.contains('soon')).toBe(false);

    await tick(3000);
    expect(el.querySelector('time')?.classList.contains('soon')).toBe(true);
    expect(text()).toBe('in 23 h 59 min (less than a day left)');
  });

  it('follows a changed end', async () => {
    await show(new Date(NOW + HOUR).toISOString());
    expect(text()).toContain('in 1 h');
    fixture.componentRef.setInput('until', null);
    await fixture.whenStable();
    expect(text()).toBe('no expiry');
  });

  it('stops its timer when it goes away', async () => {
    await show(new Date(NOW + HOUR).toISOString());
    expect(vi.getTimerCount()).toBe(1);
    fixture.destroy();
    expect(vi.getTimerCount()).toBe(0);
  });
});
