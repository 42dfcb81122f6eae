import { ChangeDetectionStrategy, Component, input } from '@angular/core';

import { formatMb } from '../../shared/format';
import type { GpuTile } from './gpu-map';

/** A node's GPUs as tiles: which GPU, what it is, and who holds it now. */
@Component({
  selector: 'app-gpu-tiles',
  template: `
    @if (!reported()) {
      <p class="none">No GPUs reported yet: the agent reports them with its first heartbeat.</p>
    } @else if (!tiles().length) {
      <p class="none">The agent reported no GPUs on this machine.</p>
    } @else {
      <ul class="tiles" [attr.aria-label]="'GPU map of ' + hostname()">
        @for (tile of tiles(); track tile.gpu.index) {
          <li class="tile" [class.held]="tile.holders.length > 0">
            <div class="title">GPU {{ tile.gpu.index }}</div>
            <div class="model">{{ tile.gpu.name || 'Unknown model' }}</div>
            <div>{{ formatMb(tile.gpu.memory_mb, '0 MiB') }}</div>
            <div class="mig">{{ mig(tile) }}</div>
            @if (tile.holders.length) {
              <div class="holder">
                Held by
                @for (holder of tile.holders; track holder.assignmentId; let last = $last) {
                  <strong>{{ holder.label }}</strong>{{ last ? '' : ', ' }}
                }
              </div>
            } @else {
              <div class="holder free">Free</div>
            }
          </li>
        }
      </ul>
    }
  `,
  styles: `
    .tiles {
      display: grid;
      grid-template-columns: repeat(auto-fill, minmax(9.5rem, 1fr));
      gap: 0.5rem;
      margin: 0;
      padding: 0;
      list-style: none;
    }
    .tile {
      display: flex;
      flex-direction: column;
      gap: 0.1rem;
      padding: 0.5rem 0.65rem;
      border: 1px solid var(--border);
      border-left: 4px solid var(--ok-fg);
      border-radius: var(--radius);
      background: var(--surface);
      font-size: 0.875rem;
      overflow-wrap: anywhere;
    }
    .tile.held {
      border-left-color: var(--warn-fg);
    }
    .title {
      font-weight: 600;
    }
    .model,
    .mig {
      color: var(--muted);
    }
    .holder {
      margin-top: 0.25rem;
      padding: 0.1rem 0.4rem;
      border-radius: var(--radius);
      background: var(--warn-bg);
      color: var(--warn-fg);
    }
    .holder.free {
      background: var(--ok-bg);
      color: var(--ok-fg);
    }
    .none {
      margin: 0;
      color: var(--muted);
    }
  `,
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class GpuTiles {
  readonly hostname = input.required<string>();
  readonly tiles = input.required<GpuTile[]>();
  /** False while the agent has not reported its hardware yet. */
  readonly reported = input(true);

  protected readonly formatMb = formatMb;

  protected mig(tile: GpuTile): string {
    if (!tile.gpu.mig_capable) {
      return 'MIG: not capable';
    }
    return tile.gpu.mig_enabled ? 'MIG capable, MIG enabled' : 'MIG capable, MIG not enabled';
  }
}
