import { ChangeDetectionStrategy, Component, computed, input, output } from '@angular/core';
import { MatButtonModule } from '@angular/material/button';

import type { Node } from '../../api';
import { formatMb } from '../../shared/format';
import type { GpuTile } from './gpu-map';
import { GpuTiles } from './gpu-tiles';
import { STATUS_WORDS, lastSeen } from './node-text';

/** One node: its state, its machine, its GPU map and what an admin can do with it. */
@Component({
  selector: 'app-node-card',
  imports: [MatButtonModule, GpuTiles],
  template: `
    <article [attr.aria-labelledby]="headingId()" [attr.data-node]="node().hostname">
      <header>
        <h2 [id]="headingId()">{{ node().hostname }}</h2>
        <span [class]="'chip chip--' + node().status" data-testid="node-status">
          {{ statusWords() }}
        </span>
      </header>
      <p class="seen" data-testid="last-seen">{{ seen() }}</p>
      @if (node().problems?.length) {
        <div class="problems" data-testid="node-problems">
          <p>Not everything reaches this node:</p>
          <ul>
            @for (problem of node().problems; track $index) {
              <li>{{ problem }}</li>
            }
          </ul>
        </div>
      }
      <dl class="facts">
        <div>
          <dt>Type</dt>
          <dd>{{ node().type }}</dd>
        </div>
        <div>
          <dt>Management IP</dt>
          <dd class="mono">{{ node().management_ip }}</dd>
        </div>
        <div>
          <dt>Agent version</dt>
          <dd>{{ node().agent_version ?? 'not reported yet' }}</dd>
        </div>
        @if (node().hardware; as hw) {
          <div>
            <dt>CPU</dt>
            <dd>{{ hw.cpu_model || 'unknown model' }}, {{ hw.cpu_cores }} cores</dd>
          </div>
          <div>
            <dt>RAM</dt>
            <dd>{{ formatMb(hw.ram_mb, '0 MiB') }}</dd>
          </div>
        } @else {
          <div>
            <dt>Hardware</dt>
            <dd>not reported yet</dd>
          </div>
        }
      </dl>
      <h3>GPUs</h3>
      <app-gpu-tiles
        [hostname]="node().hostname"
        [tiles]="tiles()"
        [reported]="!!node().hardware"
      />
      @if (node().status !== 'revoked') {
        <div class="actions">
          <button mat-stroked-button type="button" [disabled]="busy()" (click)="newToken.emit()">
            New enrollment token for {{ node().hostname }}
          </button>
          <button
            mat-stroked-button
            type="button"
            class="danger"
            [disabled]="busy()"
            (click)="remove.emit()"
          >
            Delete {{ node().hostname }}
          </button>
        </div>
      }
    </article>
  `,
  styles: `
    article {
      padding: 1rem;
      border: 1px solid var(--border);
      border-radius: var(--radius);
      background: var(--surface);
    }
    header {
      display: flex;
      flex-wrap: wrap;
      align-items: center;
      gap: 0.5rem 0.75rem;
    }
    h2 {
      margin: 0;
      font-size: 1.2rem;
      overflow-wrap: anywhere;
    }
    h3 {
      margin: 0.75rem 0 0.5rem;
      font-size: 1rem;
    }
    .chip {
      padding: 0.1rem 0.6rem;
      border: 1px solid currentColor;
      border-radius: 999px;
      font-size: 0.85rem;
      font-weight: 600;
    }
    .chip--online {
      background: var(--ok-bg);
      color: var(--ok-fg);
    }
    .chip--pending {
      background: var(--warn-bg);
      color: var(--warn-fg);
    }
    .chip--offline {
      background: var(--bad-bg);
      color: var(--bad-fg);
    }
    .chip--revoked {
      background: var(--bg);
      color: var(--muted);
    }
    .seen {
      margin: 0.25rem 0 0.5rem;
      color: var(--muted);
    }
    .problems {
      margin: 0 0 0.5rem;
      padding: 0.5rem 0.75rem;
      border-radius: var(--radius);
      background: var(--warn-bg);
      color: var(--warn-fg);
    }
    .problems p,
    .problems ul {
      margin: 0;
    }
    .facts {
      display: grid;
      grid-template-columns: repeat(auto-fill, minmax(15rem, 1fr));
      gap: 0.25rem 1rem;
      margin: 0;
    }
    .facts div {
      display: flex;
      gap: 0.4rem;
      min-width: 0;
    }
    dt {
      flex: none;
      color: var(--muted);
    }
    dt::after {
      content: ':';
    }
    dd {
      margin: 0;
      min-width: 0;
      overflow-wrap: break-word;
    }
    .mono {
      font-family: var(--mono);
    }
    .actions {
      display: flex;
      flex-wrap: wrap;
      gap: 0.5rem;
      margin-top: 1rem;
    }
    .actions button {
      /* A long host name wraps inside its button rather than pushing the card wider than a phone. */
      height: auto;
      min-height: 2.5rem;
      max-width: 100%;
      white-space: normal;
      overflow-wrap: anywhere;
    }
    .danger {
      --mat-button-outlined-label-text-color: var(--bad-fg);
    }
  `,
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class NodeCard {
  readonly node = input.required<Node>();
  readonly tiles = input.required<GpuTile[]>();
  /** The moment "last seen" counts from: when the server last answered. */
  readonly now = input.required<number>();
  readonly busy = input(false);
  readonly newToken = output<void>();
  readonly remove = output<void>();

  protected readonly formatMb = formatMb;
  protected readonly headingId = computed(() => `node-${this.node().id}`);
  protected readonly statusWords = computed(() => STATUS_WORDS[this.node().status]);
  protected readonly seen = computed(() => lastSeen(this.node(), this.now()));
}
