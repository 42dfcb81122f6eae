import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { ComponentFixture, TestBed } from '@angular/core/testing';

import type { AuditVerification } from '../../api';
import { problem } from '../../testing/http.testing';
import { AuditChain } from './audit-chain';

const VERIFY = '/api/v1/audit-log/verify';

function verification(fields: Partial<AuditVerification>): AuditVerification {
  return {
    valid: true,
    checked: 0,
    first_bad_id: null,
    problem: null,
    next_cursor: null,
    checked_at: '2030-01-02T03:04:05Z',
    ...fields,
  };
}

describe('AuditChain', () => {
  let fixture: ComponentFixture<AuditChain>;
  let httpTesting: HttpTestingController;
  let el: HTMLElement;

  const badge = () => el.querySelector<HTMLElement>('.badge');
  const text = (node: Element | null) => node?.textContent?.replace(/\s+/g, ' ').trim();

  async function answer(reply: AuditVerification, cursor: string | null = null): Promise<void> {
    const req = httpTesting.expectOne((r) => r.url === VERIFY);
    expect(req.request.params.get('cursor')).toBe(cursor);
    req.flush(reply);
    await fixture.whenStable();
  }

  beforeEach(async () => {
    TestBed.configureTestingModule({
      imports: [AuditChain],
      providers: [provideHttpClient(), provideHttpClientTesting()],
    });
    httpTesting = TestBed.inject(HttpTestingController);
    fixture = TestBed.createComponent(AuditChain);
    el = fixture.nativeElement as HTMLElement;
    await fixture.whenStable();
  });

  afterEach(() => httpTesting.verify());

  it('says the chain is valid, in words and with the ok style', async () => {
    expect(text(badge())).toBe('Checking the audit chain… (0 entries checked so far)');
    await answer(verification({ valid: true, checked: 1234 }));

    expect(text(badge())).toBe('Audit chain valid (1234 entries checked)');
    expect(badge()?.classList).toContain('badge--ok');
    expect(badge()?.getAttribute('role')).toBe('status');
  });

  it('says where the chain is broken and why, as an alert', async () => {
    await answer(
      verification({ valid: false, checked: 41, first_bad_id: 'e-42', problem: 'row_altered' }),
    );

    expect(text(badge())).toBe(
      'Audit chain BROKEN at entry e-42: the entry was changed after it was written (it no longer matches its own hash)',
    );
    expect(badge()?.classList).toContain('badge--bad');
    expect(badge()?.getAttribute('role')).toBe('alert');
    expect(el.textContent).toContain('The 41 entries before it are intact.');
  });

  it('names a broken link as such', async () => {
    await answer(
      verification({ valid: false, checked: 1, first_bad_id: 'e-2', problem: 'chain_broken' }),
    );

    expect(text(badge())).toMatch(
      /^Audit chain BROKEN at entry e-2: it does not link to the entry before it/,
    );
    expect(el.textContent).toContain('The 1 entry before it is intact.');
  });

  it('says why it could not check', async () => {
    httpTesting
      .expectOne(VERIFY)
      .flush(problem(503, 'service_unavailable', 'identity did not answer'), {
        status: 503,
        statusText: 'Service Unavailable',
      });
    await fixture.whenStable();

    expect(text(badge())).toBe(
      'Could not check the audit chain: A gpulab service did not answer (identity did not answer). Try again in a moment.',
    );
    expect(badge()?.getAttribute('role')).toBe('alert');
  });

  it('goes on with each cursor while the check is not finished, showing progress', async () => {
    await answer(verification({ valid: null, checked: 60000, next_cursor: 'k1' }));
    expect(text(badge())).toBe('Checking the audit chain… (60000 entries checked so far)');

    await answer(verification({ valid: null, checked: 120000, next_cursor: 'k2' }), 'k1');
    expect(text(badge())).toBe('Checking the audit chain… (120000 entries checked so far)');

    await answer(verification({ valid: true, checked: 130000 }), 'k2');
    expect(text(badge())).toBe('Audit chain valid (130000 entries checked)');
  });

  it('checks again on "Check again"', async () => {
    httpTesting
      .expectOne(VERIFY)
      .flush(problem(503, 'service_unavailable'), { status: 503, statusText: 'x' });
    await fixture.whenStable();
    expect(badge()?.dataset['state']).toBe('error');

    const button = Array.from(el.querySelectorAll('button')).find(
      (b) => b.textContent?.trim() === 'Check again',
    );
    button?.click();
    await fixture.whenStable();
    expect(text(badge())).toBe('Checking the audit chain… (0 entries checked so far)');

    await answer(verification({ valid: true, checked: 1 }));
    expect(text(badge())).toBe('Audit chain valid (1 entry checked)');
  });
});
