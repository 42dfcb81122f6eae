import { ChangeDetectionStrategy, Component } from '@angular/core';

import { HealthPanel } from '../shared/health-panel/health-panel';

/** The administrator's landing page. Placeholder: each section becomes its own route. */
@Component({
  selector: 'app-admin-home',
  imports: [HealthPanel],
  template: `
    <h1>Administration</h1>
    <p class="lead">Manage who gets which GPUs. These sections are on their way:</p>
    <ul class="placeholder-list">
      @for (section of sections; track section.name) {
        <li>
          <strong>{{ section.name }}</strong> — {{ section.text }}
        </li>
      }
    </ul>
    <app-health-panel />
  `,
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class AdminHome {
  protected readonly sections = [
    { name: 'Nodes', text: 'enroll machines and see their GPUs' },
    { name: 'Environments', text: 'group nodes and choose how GPUs are enforced' },
    { name: 'Users', text: 'invite people and manage their access' },
    { name: 'Assignments', text: 'give a user GPUs, and revoke them' },
    { name: 'Audit log', text: 'who did what, and when' },
  ] as const;
}
