import { DatePipe } from '@angular/common';
import { ChangeDetectionStrategy, Component, input, signal } from '@angular/core';
import { MatButtonModule } from '@angular/material/button';
import { MatTableModule } from '@angular/material/table';

import type { AuditEntry } from '../../api';
import { CopyButton } from '../../shared/copy-button';
import { utcIso } from './audit-query';

/** One page of audit entries; each row's details open below it. */
@Component({
  selector: 'app-audit-table',
  imports: [DatePipe, MatButtonModule, MatTableModule, CopyButton],
  templateUrl: './audit-table.html',
  styleUrl: './audit-table.scss',
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class AuditTable {
  readonly entries = input.required<readonly AuditEntry[]>();

  protected readonly columns = ['at', 'actor', 'action', 'target', 'open'];
  private readonly open = signal<ReadonlySet<string>>(new Set());

  protected readonly trackById = (_: number, entry: AuditEntry) => entry.id;

  protected isOpen(id: string): boolean {
    return this.open().has(id);
  }

  protected toggle(id: string): void {
    this.open.update((open) => {
      const next = new Set(open);
      if (!next.delete(id)) {
        next.add(id);
      }
      return next;
    });
  }

  /** Who acted: their email, or "system" for what gpulab did on its own. */
  protected actorOf(entry: AuditEntry): string {
    return entry.actor_email ?? entry.actor_id ?? 'system';
  }

  protected utc(at: string): string {
    const t = Date.parse(at);
    return Number.isNaN(t) ? at : utcIso(new Date(t));
  }

  protected json(details: AuditEntry['details']): string {
    return JSON.stringify(details, null, 2);
  }

  protected hasDetails(details: AuditEntry['details']): boolean {
    return Object.keys(details ?? {}).length > 0;
  }
}
