import { DatePipe } from '@angular/common';
import {
  ChangeDetectionStrategy,
  Component,
  DestroyRef,
  ElementRef,
  Injector,
  afterNextRender,
  computed,
  effect,
  inject,
  input,
  signal,
  untracked,
} from '@angular/core';
import { takeUntilDestroyed } from '@angular/core/rxjs-interop';
import { MatExpansionModule } from '@angular/material/expansion';
import { RouterLink } from '@angular/router';
import { EMPTY, Observable, expand, reduce } from 'rxjs';

import { Api, Assignment, codeOf, describeHttpError } from '../../api';
import { Auth } from '../../core/auth';
import { ListState } from '../../shared/list-state';
import { poll } from '../../shared/polling';
import { AccessState } from './access-block';
import { AssignmentCard } from './assignment-card';
import { endedWord, gpuSummary } from './assignment-view';

/** The most the gateway gives in one page (shared/API.md, "Lists"). */
const PAGE_LIMIT = 500;
/** Pages read per refresh at most: 5,000 assignments, far more than one person ever has. */
const MAX_PAGES = 10;

/**
 * `/` ("My GPUs") and `/assignments/:id` (the link in the assignment mails, that assignment in
 * view): the caller's active assignments as cards, refreshed every 3 s, each with how to connect;
 * the ended ones in a closed panel below.
 */
@Component({
  selector: 'app-my-gpus',
  imports: [DatePipe, MatExpansionModule, RouterLink, ListState, AssignmentCard],
  template: `
    <h1>My GPUs</h1>
    <p class="lead">The GPUs you hold, and how to connect to them.</p>

    @if (missing()) {
      <p class="notice" role="status" data-testid="not-found">
        The assignment in your link is not one of yours, or no longer exists. Here are the ones you
        have.
      </p>
    }

    <app-list-state what="your GPUs" [source]="assignments" [empty]="!active().length">
      <div empty data-testid="empty">
        @if (hasKey()) {
          <p>No GPUs assigned to you yet. Ask for some under Request GPUs, or ask an admin.</p>
        } @else {
          <p><strong>Add an SSH key first.</strong> The nodes let you in with it.</p>
          <p><a routerLink="/keys">Add an SSH key</a></p>
        }
      </div>
      <div class="cards">
        @for (a of active(); track a.id) {
          <app-assignment-card
            [id]="'assignment-' + a.id"
            [assignment]="a"
            [access]="accessOf(a.id)"
            [target]="a.id === id()"
            [focusExtend]="focusExtendOf(a.id)"
            (retryAccess)="fetchAccess(a.id)"
            (changed)="assignments.reload()"
          />
        }
      </div>
    </app-list-state>

    @if (ended().length) {
      <mat-expansion-panel
        class="ended"
        [expanded]="endedOpen()"
        (opened)="endedOpen.set(true)"
        (closed)="endedOpen.set(false)"
      >
        <mat-expansion-panel-header>
          <mat-panel-title>Ended assignments ({{ ended().length }})</mat-panel-title>
        </mat-expansion-panel-header>
        <ul class="ended__list">
          @for (a of ended(); track a.id) {
            <li
              [id]="'assignment-' + a.id"
              [class.target]="a.id === id()"
              [attr.aria-current]="a.id === id() ? 'true' : null"
              [attr.data-assignment-id]="a.id"
            >
              <span class="ended__host">{{ a.node_hostname }}</span> · {{ a.environment_name }} ·
              {{ gpuSummary(a.gpus) }} ·
              <span class="ended__status"
                >{{ endedWord(a.status) }}
                @if (a.ended_at) {
                  <time [attr.datetime]="a.ended_at">{{ a.ended_at | date: 'medium' }}</time>
                }
              </span>
            </li>
          }
        </ul>
      </mat-expansion-panel>
    }
  `,
  styles: `
    .cards {
      display: grid;
      grid-template-columns: minmax(0, 1fr);
      gap: 1rem;
    }
    .notice {
      padding: 0.5rem 0.75rem;
      border-radius: var(--radius);
      background: var(--warn-bg);
      color: var(--warn-fg);
    }
    [empty] p {
      margin: 0 0 0.25rem;
    }
    .ended {
      margin-top: 1.5rem;
    }
    .ended__list {
      margin: 0;
      padding: 0;
      list-style: none;
    }
    .ended__list li {
      padding: 0.5rem 0;
      border-top: 1px solid var(--border);
      scroll-margin-top: 1rem;
    }
    .ended__list li.target {
      padding-left: 0.5rem;
      border-left: 3px solid var(--accent);
    }
    .ended__host {
      font-weight: 600;
      overflow-wrap: anywhere;
    }
    .ended__status {
      color: var(--muted);
    }
  `,
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class MyGpus {
  private readonly api = inject(Api);
  private readonly auth = inject(Auth);
  private readonly destroyRef = inject(DestroyRef);
  private readonly host = inject<ElementRef<HTMLElement>>(ElementRef);
  private readonly injector = inject(Injector);

  /** `/assignments/:id`, bound by the router: the assignment to open and bring into view. */
  readonly id = input<string>();
  /** `?extend=1`, the expiry mail's link: focus an extend control. */
  readonly extend = input<string>();
  /** `?assignment=<id>` with `?extend=1`: whose extend control takes the focus. */
  readonly assignment = input<string>();

  protected readonly assignments = poll(() => this.loadAll());
  private readonly all = computed(() => this.assignments.value() ?? []);
  protected readonly active = computed(() => this.all().filter((a) => a.status === 'active'));
  /** Most recently ended first. */
  protected readonly ended = computed(() =>
    this.all()
      .filter((a) => a.status !== 'active')
      .sort((x, y) => (y.ended_at ?? y.created_at).localeCompare(x.ended_at ?? x.created_at)),
  );
  protected readonly hasKey = computed(() => this.auth.user()?.has_ssh_key ?? false);
  protected readonly endedOpen = signal(false);
  /** The linked assignment is not in the caller's list. */
  protected readonly missing = computed(() => {
    const id = this.id();
    return !!id && !!this.assignments.value() && !this.all().some((a) => a.id === id);
  });

  private readonly access = signal<ReadonlyMap<string, AccessState>>(new Map());
  /** The id already brought into view: each poll must not scroll the page back to it. */
  private shownId: string | null = null;

  protected readonly gpuSummary = gpuSummary;
  protected readonly endedWord = endedWord;

  constructor() {
    // Access is asked for once per active assignment (the server shows a NetBird key again until it is used).
    effect(() => {
      const known = this.access();
      for (const a of this.active()) {
        if (!known.has(a.id)) {
          untracked(() => this.fetchAccess(a.id));
        }
      }
    });
    // Access the node has not set up yet is asked for again at each refresh of the list.
    effect(() => {
      this.assignments.updatedAt();
      const known = untracked(() => this.access());
      for (const a of untracked(() => this.active())) {
        if (known.get(a.id)?.kind === 'not-ready') {
          untracked(() => this.fetchAccess(a.id, { quiet: true }));
        }
      }
    });
    effect(() => {
      const id = this.id();
      const found = this.all().find((a) => a.id === id);
      if (!id || !found || this.shownId === id) {
        return;
      }
      this.shownId = id;
      if (found.status !== 'active') {
        untracked(() => this.endedOpen.set(true));
      }
      afterNextRender(() => this.bringIntoView(id), { injector: this.injector });
    });
  }

  /**
   * True for the one card whose extend control takes the focus: the assignment the link names, else
   * the one in the address, else the first card.
   */
  protected focusExtendOf(id: string): boolean {
    if (this.extend() !== '1') {
      return false;
    }
    const active = this.active();
    const wanted = this.assignment() ?? this.id();
    const target = active.some((a) => a.id === wanted) ? wanted : active[0]?.id;
    return id === target;
  }

  protected accessOf(id: string): AccessState {
    return this.access().get(id) ?? { kind: 'loading' };
  }

  /** `quiet`: keep showing the current state (no spinner) until the answer comes. */
  protected fetchAccess(id: string, { quiet = false } = {}): void {
    if (!quiet) {
      this.setAccess(id, { kind: 'loading' });
    }
    this.api
      .get('/api/v1/me/assignments/{id}/access', { path: { id } })
      .pipe(takeUntilDestroyed(this.destroyRef))
      .subscribe({
        next: (access) => this.setAccess(id, { kind: 'ready', access }),
        error: (err: unknown) =>
          this.setAccess(
            id,
            codeOf(err) === 'access_not_ready'
              ? { kind: 'not-ready', message: describeHttpError(err) }
              : { kind: 'error', message: accessError(err) },
          ),
      });
  }

  private setAccess(id: string, state: AccessState): void {
    this.access.update((map) => new Map(map).set(id, state));
  }

  /** Every page of the caller's assignments (one, in practice). */
  private loadAll(): Observable<Assignment[]> {
    const page = (cursor?: string) =>
      this.api.get('/api/v1/me/assignments', { query: { limit: PAGE_LIMIT, cursor } });
    return page().pipe(
      expand((reply, i) =>
        reply.next_cursor && i + 1 < MAX_PAGES ? page(reply.next_cursor) : EMPTY,
      ),
      reduce((all: Assignment[], reply) => all.concat(reply.items), []),
    );
  }

  private bringIntoView(id: string): void {
    const target = this.host.nativeElement.querySelector<HTMLElement>(
      `[data-assignment-id="${id}"]`,
    );
    // jsdom (the unit tests) has no scrollIntoView.
    target?.scrollIntoView?.({ block: 'start', behavior: 'smooth' });
  }
}

/** Why the access details could not be had, in words. */
function accessError(err: unknown): string {
  switch (codeOf(err)) {
    case 'assignment_not_active':
      return 'This assignment has ended, so it can no longer be reached.';
    case 'access_provider_unavailable':
      return `The way to reach this node is not available right now: ${describeHttpError(err)}`;
    default:
      return describeHttpError(err);
  }
}
