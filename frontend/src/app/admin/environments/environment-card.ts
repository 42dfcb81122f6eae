import {
  ChangeDetectionStrategy,
  Component,
  computed,
  inject,
  input,
  output,
  signal,
} from '@angular/core';
import { FormsModule } from '@angular/forms';
import { MatButtonModule } from '@angular/material/button';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatSelectModule } from '@angular/material/select';
import { Observable, firstValueFrom } from 'rxjs';

import {
  Api,
  type SelfServiceEnvironment as Environment,
  type Node,
  codeOf,
  describeHttpError,
} from '../../api';
import { Confirm } from '../../shared/confirm';
import { formatMb } from '../../shared/format';
import { Toast } from '../../shared/toast';
import { explain } from './modes';

/**
 * One Environment: its settings, its nodes, and attaching, detaching, editing and deleting it.
 * What it shows is what the server said: after each change it asks the page to load again.
 */
@Component({
  selector: 'app-environment-card',
  imports: [FormsModule, MatButtonModule, MatFormFieldModule, MatSelectModule],
  templateUrl: './environment-card.html',
  styleUrl: './environment-card.scss',
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class EnvironmentCard {
  private readonly api = inject(Api);
  private readonly confirm = inject(Confirm);
  private readonly toast = inject(Toast);

  readonly environment = input.required<Environment>();
  /** Every node the page knows, revoked ones included (an attached node may have been deleted). */
  readonly nodes = input.required<readonly Node[]>();
  readonly edit = output<void>();
  /** Something changed on the server: the page loads again. */
  readonly changed = output<void>();

  protected readonly explain = explain;
  protected readonly formatMb = formatMb;
  protected readonly id = computed(() => `env-${this.environment().id}`);

  protected readonly attached = computed(() => {
    const byId = new Map(this.nodes().map((n) => [n.id, n]));
    return this.environment()
      .node_ids.map((id) => ({ id, node: byId.get(id) }))
      .map(({ id, node }) => ({
        id,
        hostname: node?.hostname ?? id,
        deleted: node?.status === 'revoked',
      }))
      .sort((a, b) => a.hostname.localeCompare(b.hostname));
  });

  /** Nodes that may be attached: not deleted, not attached yet. */
  protected readonly attachable = computed(() => {
    const taken = new Set(this.environment().node_ids);
    return this.nodes()
      .filter((n) => n.status !== 'revoked' && !taken.has(n.id))
      .sort((a, b) => a.hostname.localeCompare(b.hostname));
  });

  protected readonly selected = signal<string | null>(null);
  protected readonly busy = signal(false);
  /** Why attaching failed (a `mig` Environment and a node without MIG, say), next to the select. */
  protected readonly attachError = signal<string | null>(null);
  /** Why detaching or deleting failed. */
  protected readonly actionError = signal<string | null>(null);

  protected expiry(env: Environment): string {
    const hours = env.default_expiry_hours;
    return hours ? `${hours} hour${hours === 1 ? '' : 's'}` : 'none';
  }

  async attach(): Promise<void> {
    const nodeId = this.selected();
    const env = this.environment();
    this.attachError.set(null);
    if (!nodeId) {
      this.attachError.set(`Choose a node to attach to ${env.name} first.`);
      return;
    }
    const hostname = this.nodes().find((n) => n.id === nodeId)?.hostname ?? nodeId;
    const ok = await this.run(
      this.api.post('/api/v1/environments/{id}/nodes', {
        path: { id: env.id },
        body: { node_id: nodeId },
      }),
      (err) => this.attachError.set(describeHttpError(err)),
    );
    if (ok) {
      this.selected.set(null);
      this.toast.done(`${hostname} attached to ${env.name}.`);
    }
  }

  async detach(nodeId: string, hostname: string): Promise<void> {
    const env = this.environment();
    const yes = await this.confirm.ask({
      title: `Detach ${hostname} from ${env.name}?`,
      message: `No new assignment of ${env.name} goes to ${hostname}. Its assignments there go on until they end.`,
      confirm: 'Detach node',
    });
    if (!yes) {
      return;
    }
    this.actionError.set(null);
    const ok = await this.run(
      this.api.delete('/api/v1/environments/{id}/nodes/{node_id}', {
        path: { id: env.id, node_id: nodeId },
      }),
      (err) => this.actionError.set(`${hostname} was not detached: ${describeHttpError(err)}`),
    );
    if (ok) {
      this.toast.done(`${hostname} detached from ${env.name}.`);
    }
  }

  async remove(): Promise<void> {
    const env = this.environment();
    const yes = await this.confirm.ask({
      title: `Delete ${env.name}?`,
      message: `Its nodes are not deleted; they only stop serving it. An Environment with active assignments cannot be deleted: revoke them or let them end first.`,
      confirm: 'Delete Environment',
    });
    if (!yes) {
      return;
    }
    this.actionError.set(null);
    const ok = await this.run(
      this.api.delete('/api/v1/environments/{id}', { path: { id: env.id } }),
      (err) =>
        this.actionError.set(
          codeOf(err) === 'environment_in_use'
            ? `${env.name} still has active assignments, so it was not deleted. Revoke them on the Assignments page (or wait until they end), then delete it.`
            : `${env.name} was not deleted: ${describeHttpError(err)}`,
        ),
    );
    if (ok) {
      this.toast.done(`${env.name} deleted.`);
    }
  }

  /** Runs one change; on success the page loads again, on failure `failed` says why. */
  private async run(
    request: Observable<unknown>,
    failed: (err: unknown) => void,
  ): Promise<boolean> {
    this.busy.set(true);
    try {
      await firstValueFrom(request, { defaultValue: undefined });
      this.changed.emit();
      return true;
    } catch (err) {
      failed(err);
      return false;
    } finally {
      this.busy.set(false);
    }
  }
}
