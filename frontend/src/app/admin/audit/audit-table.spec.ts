import { ComponentFixture, TestBed } from '@angular/core/testing';

import type { AuditEntry } from '../../api';
import { AuditTable } from './audit-table';
import { entry } from './audit.testing';

describe('AuditTable', () => {
  let fixture: ComponentFixture<AuditTable>;
  let el: HTMLElement;

  async function show(entries: AuditEntry[]): Promise<void> {
    fixture.componentRef.setInput('entries', entries);
    await fixture.whenStable();
  }

  const rows = () => Array.from(el.querySelectorAll<HTMLElement>('tr.entry'));
  const cells = (row: HTMLElement) =>
    Array.from(row.querySelectorAll('td')).map((td) => td.textContent?.trim());
  const toggles = () => Array.from(el.querySelectorAll<HTMLButtonElement>('button.toggle'));

  beforeEach(() => {
    TestBed.configureTestingModule({ imports: [AuditTable] });
    fixture = TestBed.createComponent(AuditTable);
    el = fixture.nativeElement as HTMLElement;
  });

  it('shows who did what to what, with "system" when nobody acted', async () => {
    await show([
      entry(1),
      entry(2, {
        actor_id: null,
        actor_email: null,
        action: 'assignment.expired',
        target_type: 'assignment',
      }),
    ]);

    expect(rows()).toHaveLength(2);
    const [first, second] = rows().map(cells);
    expect(first[1]).toBe('grace@lab.org');
    expect(first[2]).toBe('user.invited');
    expect(first[3]).toContain('user');
    expect(second[1]).toBe('system');
    expect(second[2]).toBe('assignment.expired');
  });

  it('gives the time in UTC in its title and the whole target id in the text', async () => {
    await show([entry(7)]);

    const time = el.querySelector('time');
    expect(time?.getAttribute('datetime')).toBe('2030-01-02T03:04:07Z');
    expect(time?.getAttribute('title')).toBe('2030-01-02T03:04:07Z (UTC)');
    const id = el.querySelector('.short-id');
    expect(id?.textContent).toBe(entry(7).target_id);
    expect(id?.getAttribute('title')).toBe(entry(7).target_id);
  });

  it('opens and closes the details of one row, pretty-printed', async () => {
    await show([entry(1), entry(2)]);
    const details = (n: number) =>
      el.querySelector<HTMLElement>(`#audit-details-${entry(n).id}`) as HTMLElement;

    expect(toggles().map((b) => b.textContent?.trim())).toEqual(['Show details', 'Show details']);
    expect(toggles()[0].getAttribute('aria-expanded')).toBe('false');
    expect(toggles()[0].getAttribute('aria-controls')).toBe(`audit-details-${entry(1).id}`);
    expect(details(1).hidden).toBe(true);

    toggles()[0].click();
    await fixture.whenStable();

    expect(toggles()[0].textContent?.trim()).toBe('Hide details');
    expect(toggles()[0].getAttribute('aria-expanded')).toBe('true');
    expect(toggles()[1].textContent?.trim()).toBe('Show details');
    expect(details(1).hidden).toBe(false);
    expect(details(2).hidden).toBe(true);
    expect(details(1).querySelector('pre')?.textContent).toBe(
      JSON.stringify({ email: 'person1@lab.org', role: 'user' }, null, 2),
    );
    expect(details(1).textContent).toContain(entry(1).id);
    expect(details(1).textContent).toContain(entry(1).target_id);
    expect(details(1).querySelector('button')?.textContent?.trim()).toBe('Copy target id');

    toggles()[0].click();
    await fixture.whenStable();

    expect(toggles()[0].textContent?.trim()).toBe('Show details');
    expect(toggles()[0].getAttribute('aria-expanded')).toBe('false');
    expect(details(1).hidden).toBe(true);
  });

  it('says when an entry has no details', async () => {
    await show([entry(1, { details: {} })]);
    toggles()[0].click();
    await fixture.whenStable();

    expect(el.querySelector('.details-row')?.textContent).toContain('none recorded');
    expect(el.querySelector('.details-row pre')).toBeNull();
  });
});
