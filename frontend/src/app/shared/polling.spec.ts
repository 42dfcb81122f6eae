import { HttpErrorResponse } from '@angular/common/http';
import { Component, inject } from '@angular/core';
import { TestBed } from '@angular/core/testing';
import { Observable, Subject, of, throwError } from 'rxjs';

import { Polled, poll } from './polling';

// Real timers with a short period: RxJS schedules its delays on its own clock.
const EVERY_MS = 40;

class Source {
  calls = 0;
  replies: (() => Observable<number>)[] = [];
  load = (): Observable<number> => {
    const n = this.calls;
    const next = this.replies[n] ?? (() => of(n));
    this.calls += 1;
    return next();
  };
}

@Component({ selector: 'app-poller', template: '' })
class Poller {
  readonly source = inject(Source);
  readonly polled: Polled<number> = poll(this.source.load, EVERY_MS);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('poll', () => {
  beforeEach(() => TestBed.configureTestingModule({ providers: [Source] }));

  it('loads at once, then again after each answer, and stops with its component', async () => {
    const fixture = TestBed.createComponent(Poller);
    const { polled, source } = fixture.componentInstance;

    expect(polled.value()).toBe(0);
    expect(polled.loading()).toBe(false);
    await vi.waitFor(() => expect(polled.value()).toBeGreaterThanOrEqual(2));
    fixture.destroy();
    const calls = source.calls;
    await sleep(EVERY_MS * 4);
    expect(source.calls).toBe(calls);
  });

  it('keeps the last value when a refresh fails, says why, and recovers', async () => {
    const source = TestBed.inject(Source);
    const gate = new Subject<number>();
    source.replies[1] = () =>
      throwError(() => new HttpErrorResponse({ status: 0, statusText: 'Unknown Error' }));
    source.replies[2] = () => gate;
    const { polled } = TestBed.createComponent(Poller).componentInstance;

    await vi.waitFor(() => expect(polled.error()).toBe('The gateway could not be reached.'));
    expect(polled.value()).toBe(0);
    await vi.waitFor(() => expect(gate.observed).toBe(true));
    gate.next(2);
    expect(polled.value()).toBe(2);
    expect(polled.error()).toBeNull();
  });

  it('never has two requests in flight, and reload() starts over at once', async () => {
    const source = TestBed.inject(Source);
    const slow = new Subject<number>();
    source.replies[1] = () => slow;
    const { polled } = TestBed.createComponent(Poller).componentInstance;

    await vi.waitFor(() => expect(source.calls).toBe(2));
    await sleep(EVERY_MS * 4);
    expect(source.calls).toBe(2); // the second request is still waiting: no third one
    polled.reload();
    expect(source.calls).toBe(3);
    expect(polled.value()).toBe(2);
    expect(slow.observed).toBe(false); // the request in flight was dropped
  });
});
