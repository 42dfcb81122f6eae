import { ChangeDetectionStrategy, Component, computed, inject, signal } from '@angular/core';
import { MatButtonModule } from '@angular/material/button';
import { MatCheckboxModule } from '@angular/material/checkbox';
import { MatDialog } from '@angular/material/dialog';
import { firstValueFrom } from 'rxjs';

import { Api, type Node, codeOf, describeHttpError } from '../../api';
import { Confirm } from '../../shared/confirm';
import { ListState } from '../../shared/list-state';
import { poll } from '../../shared/polling';
import { Toast } from '../../shared/toast';
import { AddNodeDialog } from './add-node-dialog';
import { gpuMap } from './gpu-map';
import { INSTALL_DIALOG_CONFIG, InstallDialog, type InstallDialogData } from './install-command';
import { NodeCard } from './node-card';
import { deleteMessage } from './node-text';

// The API's largest page (shared/API.md, "Lists"); a lab with more nodes is not one this page
// has to serve yet.
const PAGE = 500;
// Users change rarely, and only name the holders of GPUs: every 30 s is soon enough.
const USERS_EVERY_MS = 30_000;

/** `/admin/nodes`: every node, its state and GPU map, updated every few seconds. */
@Component({
  selector: 'app-nodes',
  imports: [MatButtonModule, MatCheckboxModule, ListState, NodeCard],
  template: `
    <div class="head">
      <h1>Nodes</h1>
      <button mat-flat-button type="button" (click)="addNode()">Add node</button>
    </div>
    <p class="lead">
      The machines whose GPUs gpulab lends. Each shows who holds which GPU now; the page updates on
      its own.
    </p>
    <mat-checkbox [checked]="showDeleted()" (change)="showDeleted.set($event.checked)">
      Show deleted nodes
    </mat-checkbox>
    @if (assignments.error(); as error) {
      <p class="warn" role="alert">
        Could not load the assignments ({{ error }}): the GPU maps may not show who holds a GPU.
      </p>
    }
    <app-list-state what="nodes" [source]="nodes" [empty]="!shown().length">
      <p empty>
        @if (hiddenCount()) {
          Every node is deleted. Tick "Show deleted nodes" to see them, or add one with "Add node".
        } @else {
          No nodes yet. Add one with "Add node"; the page shows the command to run on the machine.
        }
      </p>
      <ul class="nodes" aria-label="Nodes">
        @for (view of shown(); track view.node.id) {
          <li>
            <app-node-card
              [node]="view.node"
              [tiles]="view.tiles"
              [now]="now()"
              [busy]="busy() === view.node.id"
              (newToken)="newToken(view.node)"
              (remove)="deleteNode(view.node)"
            />
          </li>
        }
      </ul>
    </app-list-state>
  `,
  styles: `
    .head {
      display: flex;
      flex-wrap: wrap;
      align-items: center;
      justify-content: space-between;
      gap: 0.5rem 1rem;
    }
    mat-checkbox {
      display: block;
      margin-bottom: 0.75rem;
    }
    .warn {
      padding: 0.5rem 0.75rem;
      border-radius: var(--radius);
      background: var(--warn-bg);
      color: var(--warn-fg);
    }
    .nodes {
      display: grid;
      gap: 1rem;
      margin: 0;
      padding: 0;
      list-style: none;
    }
  `,
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class Nodes {
  private readonly api = inject(Api);
  private readonly dialog = inject(MatDialog);
  private readonly confirm = inject(Confirm);
  private readonly toast = inject(Toast);

  protected readonly nodes = poll(() => this.api.get('/api/v1/nodes', { query: { limit: PAGE } }));
  protected readonly assignments = poll(() =>
    this.api.get('/api/v1/assignments', { query: { status: 'active', limit: PAGE } }),
  );
  protected readonly users = poll(
    () => this.api.get('/api/v1/users', { query: { limit: PAGE } }),
    USERS_EVERY_MS,
  );

  protected readonly showDeleted = signal(false);
  /** The node an action is running for; its buttons wait. */
  protected readonly busy = signal<string | null>(null);

  /** "Last seen" counts to the server's last answer, so it moves with every poll. */
  protected readonly now = computed(() => this.nodes.updatedAt()?.getTime() ?? Date.now());

  private readonly all = computed(() => this.nodes.value()?.items ?? []);
  protected readonly hiddenCount = computed(() =>
    this.showDeleted() ? 0 : this.all().filter((n) => n.status === 'revoked').length,
  );
  protected readonly shown = computed(() => {
    const assignments = this.assignments.value()?.items ?? [];
    const users = this.users.value()?.items;
    return this.all()
      .filter((node) => this.showDeleted() || node.status !== 'revoked')
      .map((node) => ({ node, tiles: gpuMap(node, assignments, users) }));
  });

  async addNode(): Promise<void> {
    const ref = this.dialog.open<AddNodeDialog, void, Node>(AddNodeDialog, {
      width: '36rem',
      maxWidth: '95vw',
      autoFocus: 'first-tabbable',
    });
    // The node exists as soon as the server made it, whether or not the dialog is closed yet.
    ref.componentInstance.nodeCreated.subscribe(() => this.nodes.reload());
    await firstValueFrom(ref.afterClosed());
    this.nodes.reload();
  }

  async newToken(node: Node): Promise<void> {
    const ok = await this.confirm.ask({
      title: `New enrollment token for ${node.hostname}?`,
      message: [
        `Only needed when ${node.hostname} must enroll again: the machine was reinstalled, or its agent lost its certificate.`,
        `Tokens made for it before stop working, and so does its certificate, at once: the agent there now locks or removes every account it manages and stops, until ${node.hostname} enrolls with the new token.`,
      ],
      confirm: 'Create enrollment token',
    });
    if (!ok) {
      return;
    }
    this.busy.set(node.id);
    try {
      const enrollment = await firstValueFrom(
        this.api.post('/api/v1/nodes/{id}/enrollment-tokens', { path: { id: node.id } }),
      );
      this.dialog.open<InstallDialog, InstallDialogData>(InstallDialog, {
        ...INSTALL_DIALOG_CONFIG,
        data: { hostname: node.hostname, enrollment },
      });
    } catch (err) {
      this.toast.failed(
        codeOf(err) === 'node_revoked'
          ? `${node.hostname} is deleted: add it again with "Add node" instead.`
          : `No new token for ${node.hostname}: ${describeHttpError(err)}`,
      );
    } finally {
      this.busy.set(null);
      this.nodes.reload();
    }
  }

  async deleteNode(node: Node): Promise<void> {
    const ok = await this.confirm.ask({
      title: `Delete ${node.hostname}?`,
      message: deleteMessage(node, this.assignments.value()?.items, this.users.value()?.items),
      confirm: 'Delete node',
    });
    if (!ok) {
      return;
    }
    this.busy.set(node.id);
    try {
      await firstValueFrom(this.api.delete('/api/v1/nodes/{id}', { path: { id: node.id } }));
      this.toast.done(`${node.hostname} deleted.`);
    } catch (err) {
      this.toast.failed(`${node.hostname} was not deleted: ${describeHttpError(err)}`);
    } finally {
      this.busy.set(null);
      this.nodes.reload();
      this.assignments.reload();
    }
  }
}
