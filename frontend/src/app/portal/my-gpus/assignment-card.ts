import { ChangeDetectionStrategy, Component, computed, input, output } from '@angular/core';

import type { Assignment } from '../../api';
import { AccessBlock, AccessState } from './access-block';
import { ExtendRelease } from './extend-release';
import { agentState, cpuLimit, gpuTitle, ramLimit } from './assignment-view';
import { Countdown } from './countdown';

/** One active assignment: where, which GPUs, the limits, when it ends, and how to connect. */
@Component({
  selector: 'app-assignment-card',
  imports: [AccessBlock, Countdown, ExtendRelease],
  template: `
    @let a = assignment();
    <article
      class="card"
      [class.card--target]="target()"
      [attr.aria-current]="target() ? 'true' : null"
      [attr.aria-labelledby]="'assignment-title-' + a.id"
      [attr.data-assignment-id]="a.id"
    >
      <header class="card__head">
        <h2 [id]="'assignment-title-' + a.id">{{ a.node_hostname }}</h2>
        <p class="card__env">{{ a.environment_name }}</p>
        @if (agent(); as state) {
          <p class="agent agent--{{ state.kind }}" data-testid="agent-state">{{ state.text }}</p>
        }
      </header>
      <dl class="facts">
        <div>
          <dt>{{ a.gpus.length === 1 ? 'GPU' : 'GPUs' }}</dt>
          <dd>
            <ul class="gpus">
              @for (gpu of a.gpus; track gpu.uuid) {
                <li>
                  {{ gpuTitle(gpu) }} <code class="uuid">{{ gpu.uuid }}</code>
                </li>
              }
            </ul>
          </dd>
        </div>
        <div>
          <dt>CPUs</dt>
          <dd>{{ cpuLimit(a.cpus) }}</dd>
        </div>
        <div>
          <dt>RAM</dt>
          <dd>{{ ramLimit(a.ram_mb) }}</dd>
        </div>
        <div>
          <dt>Linux user</dt>
          <dd>
            <code>{{ a.linux_username }}</code>
          </dd>
        </div>
        <div>
          <dt>Ends</dt>
          <dd><app-countdown [until]="a.expires_at" /></dd>
        </div>
      </dl>
      <app-access-block
        [state]="access()"
        [host]="a.node_hostname"
        [user]="a.linux_username"
        (retry)="retryAccess.emit()"
      />
      <app-extend-release
        [assignment]="a"
        [focusExtend]="focusExtend()"
        (changed)="changed.emit()"
      />
    </article>
  `,
  styles: `
    .card {
      padding: 1rem 1.25rem;
      background: var(--surface);
      border: 1px solid var(--border);
      border-radius: var(--radius);
      scroll-margin-top: 1rem;
    }
    .card--target {
      border: 2px solid var(--accent);
    }
    .card__head {
      display: flex;
      flex-wrap: wrap;
      align-items: baseline;
      gap: 0.25rem 0.75rem;
    }
    h2 {
      margin: 0;
      font-size: 1.25rem;
      overflow-wrap: anywhere;
    }
    .card__head p {
      margin: 0;
    }
    .card__env {
      color: var(--muted);
    }
    .agent {
      padding: 0.05rem 0.5rem;
      border-radius: var(--radius);
      font-size: 0.9rem;
    }
    .agent--applied {
      background: var(--ok-bg);
      color: var(--ok-fg);
    }
    .agent--pending {
      background: var(--warn-bg);
      color: var(--warn-fg);
    }
    .agent--failed {
      background: var(--bad-bg);
      color: var(--bad-fg);
    }
    .facts {
      display: flex;
      flex-wrap: wrap;
      gap: 0.75rem 2.5rem;
      margin: 1rem 0 0;
    }
    .facts > div:first-child {
      flex-basis: 100%;
    }
    dt {
      color: var(--muted);
      font-size: 0.85rem;
    }
    dd {
      margin: 0;
    }
    .gpus {
      margin: 0;
      padding: 0;
      list-style: none;
    }
    code {
      font-family: var(--mono);
      font-size: 0.85rem;
      overflow-wrap: anywhere;
    }
    .uuid {
      margin-left: 0.5rem;
      color: var(--muted);
    }
  `,
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class AssignmentCard {
  readonly assignment = input.required<Assignment>();
  readonly access = input.required<AccessState>();
  /** Opened from a link to this assignment (`/assignments/:id`). */
  readonly target = input(false);
  readonly retryAccess = output<void>();
  /** Opened from the expiry mail (`?extend=1`): the extend control takes the focus. */
  readonly focusExtend = input(false);
  /** Extended or released: the list should be asked again. */
  readonly changed = output<void>();

  protected readonly agent = computed(() => agentState(this.assignment()));
  protected readonly gpuTitle = gpuTitle;
  protected readonly cpuLimit = cpuLimit;
  protected readonly ramLimit = ramLimit;
}
