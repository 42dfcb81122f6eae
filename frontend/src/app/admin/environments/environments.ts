import { ChangeDetectionStrategy, Component, computed, inject } from '@angular/core';
import { MatButtonModule } from '@angular/material/button';
import { MatDialog } from '@angular/material/dialog';
import { firstValueFrom } from 'rxjs';

import { Api, type Environment } from '../../api';
import { ListState } from '../../shared/list-state';
import { poll } from '../../shared/polling';
import { Toast } from '../../shared/toast';
import { EnvironmentCard } from './environment-card';
import { EnvironmentForm, type EnvironmentFormData } from './environment-form';

// The API's largest page (shared/API.md, "Lists").
const PAGE = 500;

const FORM_DIALOG = { width: '40rem', maxWidth: '95vw', autoFocus: 'first-tabbable' } as const;

/** `/admin/environments`: how GPUs are lent (enforcement, tunnel, defaults) and on which nodes. */
@Component({
  selector: 'app-environments',
  imports: [MatButtonModule, ListState, EnvironmentCard],
  template: `
    <div class="head">
      <h1>Environments</h1>
      <button mat-flat-button type="button" (click)="create()">New Environment</button>
    </div>
    <p class="lead">
      An Environment says how assigned GPUs are enforced and reached, and on which nodes its
      assignments may run. A node can serve several Environments.
    </p>
    @if (nodes.error(); as error) {
      <p class="warn" role="alert">
        Could not load the nodes ({{ error }}): attached nodes show by id, and none can be attached.
      </p>
    }
    <app-list-state what="Environments" [source]="environments" [empty]="!items().length">
      <p empty>No Environments yet. Create one, then attach nodes to it.</p>
      <ul class="environments" aria-label="Environments">
        @for (env of items(); track env.id) {
          <li>
            <app-environment-card
              [environment]="env"
              [nodes]="allNodes()"
              (edit)="edit(env)"
              (changed)="reload()"
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
    .warn {
      padding: 0.5rem 0.75rem;
      border-radius: var(--radius);
      background: var(--warn-bg);
      color: var(--warn-fg);
    }
    .environments {
      display: grid;
      gap: 1rem;
      margin: 0;
      padding: 0;
      list-style: none;
    }
  `,
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class Environments {
  private readonly api = inject(Api);
  private readonly dialog = inject(MatDialog);
  private readonly toast = inject(Toast);

  protected readonly environments = poll(() =>
    this.api.get('/api/v1/environments', { query: { limit: PAGE } }),
  );
  protected readonly nodes = poll(() => this.api.get('/api/v1/nodes', { query: { limit: PAGE } }));

  protected readonly items = computed(() => this.environments.value()?.items ?? []);
  protected readonly allNodes = computed(() => this.nodes.value()?.items ?? []);

  async create(): Promise<void> {
    const saved = await this.openForm({});
    if (saved) {
      this.toast.done(`${saved.name} created. Attach nodes to it next.`);
    }
  }

  async edit(environment: Environment): Promise<void> {
    const saved = await this.openForm({ environment });
    if (saved) {
      this.toast.done(`${saved.name} saved.`);
    }
  }

  protected reload(): void {
    this.environments.reload();
    this.nodes.reload();
  }

  private async openForm(data: EnvironmentFormData): Promise<Environment | undefined> {
    const ref = this.dialog.open<EnvironmentForm, EnvironmentFormData, Environment>(
      EnvironmentForm,
      { ...FORM_DIALOG, data },
    );
    const saved = await firstValueFrom(ref.afterClosed());
    if (saved) {
      this.reload();
    }
    return saved;
  }
}
