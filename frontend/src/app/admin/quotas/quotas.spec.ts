import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { ComponentFixture, TestBed } from '@angular/core/testing';
import { provideRouter } from '@angular/router';

import { USER, nextRequest } from '../../testing/http.testing';
import { quota } from '../../testing/self-service.testing';
import { settle, typeInto } from '../nodes/nodes.testing';
import { latestRequest } from '../users/users.testing';
import { Quotas } from './quotas';

describe('Quotas', () => {
  let fixture: ComponentFixture<Quotas>;
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

  beforeEach(async () => {
    TestBed.configureTestingModule({
      imports: [Quotas],
      providers: [provideRouter([]), provideHttpClient(), provideHttpClientTesting()],
    });
    http = TestBed.inject(HttpTestingController);
    fixture = TestBed.createComponent(Quotas);
    el = fixture.nativeElement as HTMLElement;
    (await nextRequest(http, (r) => r.url === '/api/v1/users')).flush({
      items: [USER],
      next_cursor: null,
    });
    (await nextRequest(http, (r) => r.url === '/api/v1/groups')).flush({
      items: [],
      next_cursor: null,
    });
    (await latestRequest(http, { method: 'GET', url: '/api/v1/quotas' })).flush({
      items: [quota({ max_gpus: 1, used: { gpus_now: 1, gpu_hours_this_month: 3 } })],
    });
    await settle(stable);
  });

  afterEach(() => {
    fixture.destroy();
    document.querySelectorAll('.cdk-overlay-container').forEach((node) => node.remove());
  });

  it('shows use against each limit, and says when one is reached', () => {
    const row = el.querySelector(`tr[data-subject="${USER.email}"]`)!;
    const cells = Array.from(row.querySelectorAll('td')).map(text);
    expect(cells.slice(0, 5)).toEqual([
      'ada@lab.org',
      'user',
      '1 of 1 at limit',
      '24 h',
      '3 of 100',
    ]);
  });

  it('edits a quota, an emptied field sent as no limit', async () => {
    button(`Edit quota of ${USER.email}`).click();
    await settle(stable);
    expect(field('Most GPUs at once').value).toBe('1');
    typeInto(field('Longest request (hours)'), '');
    typeInto(field('GPU-hours per month'), '250');
    await settle(stable);
    button('Save quota').click();
    const req = await nextRequest(http, {
      method: 'PUT',
      url: `/api/v1/quotas/users/${USER.id}`,
    });
    expect(req.request.body).toEqual({ max_gpus: 1, max_hours: null, gpu_hours_per_month: 250 });
    req.flush(quota({ max_gpus: 1, max_hours: null, gpu_hours_per_month: 250 }));
    await settle(stable);
  });

  it('checks the fields first', async () => {
    typeInto(field('Most GPUs at once'), '1.5');
    await settle(stable);
    button('Save quota').click();
    await settle(stable);
    expect(Array.from(el.querySelectorAll('mat-error')).map(text)).toEqual([
      'Choose a user or a group.',
      'Enter a whole number, or leave it empty for no limit.',
    ]);
    http.expectNone({ method: 'PUT' });
  });
});
