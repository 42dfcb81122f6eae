import { HttpRequest, provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { ComponentFixture, TestBed } from '@angular/core/testing';

import { settle, typeInto } from '../nodes/nodes.testing';
import { Usage, rangeError } from './usage';

const USAGE = (req: HttpRequest<unknown>) => req.method === 'GET' && req.url === '/api/v1/usage';

describe('rangeError', () => {
  it('wants both days, in order', () => {
    expect(rangeError('', '2030-01-01')).toBe('Enter both days.');
    expect(rangeError('2030-01-02', '2030-01-01')).toBe('The last day comes before the first.');
    expect(rangeError('2030-01-01', '2030-01-01')).toBeNull();
  });
});

describe('Usage', () => {
  let fixture: ComponentFixture<Usage>;
  let http: HttpTestingController;
  let el: HTMLElement;
  const stable = () => fixture.whenStable();
  const text = (e: Element | null | undefined) => e?.textContent?.replace(/\s+/g, ' ').trim() ?? '';
  const field = (label: string) => {
    const ff = Array.from(el.querySelectorAll('mat-form-field')).find(
      (f) => f.querySelector('mat-label')?.textContent?.trim() === label,
    );
    return ff!.querySelector<HTMLInputElement>('input, mat-select')!;
  };
  const button = (name: string) =>
    Array.from(el.querySelectorAll<HTMLButtonElement>('button')).find((b) => text(b) === name)!;

  /** Answers every open /usage request: 2 GPU-hours of ada a bucket, the totals with bob too. */
  function answerAll(open = http.match(USAGE).filter((r) => !r.cancelled)): number {
    for (const req of open) {
      const from = req.request.params.get('from')!;
      const until = req.request.params.get('until')!;
      const days = (Date.parse(until) - Date.parse(from)) / 86_400_000;
      req.flush({
        from,
        until,
        items: [
          { key: { id: 'u1', name: 'ada@lab.org' }, gpu_hours: 2 * days, assignments: 1 },
          { key: { id: 'u2', name: 'bob@lab.org' }, gpu_hours: 0.5, assignments: 1 },
        ],
      });
    }
    return open.length;
  }

  beforeEach(async () => {
    TestBed.configureTestingModule({
      imports: [Usage],
      providers: [provideHttpClient(), provideHttpClientTesting()],
    });
    http = TestBed.inject(HttpTestingController);
    fixture = TestBed.createComponent(Usage);
    el = fixture.nativeElement as HTMLElement;
    await settle(stable);
    answerAll();
    await settle(stable);
  });

  afterEach(() => {
    fixture.destroy();
    document.querySelectorAll('.cdk-overlay-container').forEach((node) => node.remove());
  });

  it('defaults to this month, by user', () => {
    const today = new Date().toISOString().slice(0, 10);
    expect(field('From').value).toBe(`${today.slice(0, 8)}01`);
    expect(field('Until').value).toBe(today);
    expect(text(el.querySelector('#usage-totals-title'))).toBe('Totals by user');
  });

  it('asks once for the totals and once per day, and draws a bar per day', async () => {
    typeInto(field('From'), '2030-01-01');
    typeInto(field('Until'), '2030-01-03');
    await settle(stable);
    button('Show usage').click();
    await settle(stable);
    const asked = http.match(USAGE).filter((r) => !r.cancelled);
    expect(
      asked.map((r) => `${r.request.params.get('from')} ${r.request.params.get('until')}`),
    ).toEqual([
      '2030-01-01T00:00:00Z 2030-01-04T00:00:00Z',
      '2030-01-01T00:00:00Z 2030-01-02T00:00:00Z',
      '2030-01-02T00:00:00Z 2030-01-03T00:00:00Z',
      '2030-01-03T00:00:00Z 2030-01-04T00:00:00Z',
    ]);
    expect(asked.every((r) => r.request.params.get('group_by') === 'user')).toBe(true);
    answerAll(asked);
    await settle(stable);

    const rows = Array.from(el.querySelectorAll('tr[data-key]')).map((r) =>
      Array.from(r.querySelectorAll('td')).map(text),
    );
    expect(rows).toEqual([
      ['ada@lab.org', '6', '1'],
      ['bob@lab.org', '0.5', '1'],
    ]);
    // Three days, two people: three stacks of two bars.
    expect(el.querySelectorAll('app-usage-chart g')).toHaveLength(3);
    expect(el.querySelectorAll('app-usage-chart rect')).toHaveLength(6);
    expect(text(el.querySelector('app-usage-chart desc'))).toContain('3 bars from 2030-01-01');
    expect(text(el.querySelector('[data-testid=usage-range]'))).toContain('6.5 GPU-hours in all');
  });

  it('refuses a range that ends before it starts', async () => {
    typeInto(field('From'), '2030-01-05');
    typeInto(field('Until'), '2030-01-01');
    await settle(stable);
    button('Show usage').click();
    await settle(stable);
    expect(text(el.querySelector('[role=alert]'))).toBe('The last day comes before the first.');
    expect(http.match(USAGE).filter((r) => !r.cancelled)).toHaveLength(0);
  });

  it('downloads the same range as CSV from the server', async () => {
    const created: Blob[] = [];
    const create = vi.spyOn(URL, 'createObjectURL').mockImplementation((b) => {
      created.push(b as Blob);
      return 'blob:usage';
    });
    const revoke = vi.spyOn(URL, 'revokeObjectURL').mockImplementation(() => undefined);
    const click = vi.spyOn(HTMLAnchorElement.prototype, 'click').mockImplementation(function (
      this: HTMLAnchorElement,
    ) {
      expect(this.download).toMatch(/^gpulab-usage-\d{4}-\d{2}-01-\d{4}-\d{2}-\d{2}\.csv$/);
    });
    try {
      button('Download CSV').click();
      await settle(stable);
      const req = http.expectOne((r) => USAGE(r) && r.headers.get('Accept') === 'text/csv');
      expect(req.request.responseType).toBe('text');
      expect(req.request.params.get('group_by')).toBe('user');
      req.flush('key_id,key_name,gpu_hours,assignments\nu1,ada@lab.org,2,1\n');
      await settle(stable);
      expect(click).toHaveBeenCalledTimes(1);
      expect(await created[0].text()).toContain('u1,ada@lab.org,2,1');
    } finally {
      create.mockRestore();
      revoke.mockRestore();
      click.mockRestore();
    }
  });
});
