import { Component, signal } from '@angular/core';
import { TestBed } from '@angular/core/testing';

import { ListState } from './list-state';
import { Polled } from './polling';

function source() {
  const value = signal<string[] | undefined>(undefined);
  const error = signal<string | null>(null);
  const loading = signal(true);
  const updatedAt = signal<Date | null>(null);
  const reload = vi.fn();
  const polled: Polled<string[]> = { value, error, loading, updatedAt, reload };
  return { polled, value, error, loading, updatedAt, reload };
}

@Component({
  selector: 'app-host',
  imports: [ListState],
  template: `
    <app-list-state what="nodes" [source]="s.polled" [empty]="!(s.value() ?? []).length">
      <p empty>No nodes yet.</p>
      <ul>
        @for (n of s.value(); track n) {
          <li>{{ n }}</li>
        }
      </ul>
    </app-list-state>
  `,
})
class Host {
  readonly s = source();
}

describe('ListState', () => {
  it('goes from loading to the list, the empty state, or an error with "Try again"', async () => {
    const fixture = TestBed.createComponent(Host);
    const { s } = fixture.componentInstance;
    const el = fixture.nativeElement as HTMLElement;
    const text = async () => {
      await fixture.whenStable();
      return el.textContent?.replace(/\s+/g, ' ').trim();
    };

    expect(await text()).toBe('Loading nodes…');
    s.loading.set(false);
    s.error.set('The gateway could not be reached.');
    expect(await text()).toContain('Could not load nodes: The gateway could not be reached.');
    (el.querySelector('button') as HTMLButtonElement).click();
    expect(s.reload).toHaveBeenCalledOnce();

    s.error.set(null);
    s.value.set([]);
    expect(await text()).toBe('No nodes yet.');
    s.value.set(['gpu-01']);
    expect(await text()).toBe('gpu-01');
  });

  it('keeps the list on screen when a refresh fails, and says since when', async () => {
    const fixture = TestBed.createComponent(Host);
    const { s } = fixture.componentInstance;
    s.loading.set(false);
    s.value.set(['gpu-01']);
    s.updatedAt.set(new Date(2030, 0, 1, 12, 34, 56));
    s.error.set('A gpulab service did not answer.');
    await fixture.whenStable();
    const el = fixture.nativeElement as HTMLElement;

    expect(el.querySelector('li')?.textContent).toBe('gpu-01');
    expect(el.querySelector('[role=alert]')?.textContent?.replace(/\s+/g, ' ')).toContain(
      'Could not refresh nodes: A gpulab service did not answer. Showing what the server said at 12:34:56.',
    );
  });
});
