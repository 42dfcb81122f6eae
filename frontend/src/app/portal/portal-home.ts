import { ChangeDetectionStrategy, Component } from '@angular/core';

import { HealthPanel } from '../shared/health-panel/health-panel';

/** The user's landing page. Placeholder until assignments and SSH keys arrive. */
@Component({
  selector: 'app-portal-home',
  imports: [HealthPanel],
  template: `
    <h1>Your GPUs</h1>
    <p class="lead">
      GPUs assigned to you, how to reach them and your SSH keys will be listed here.
    </p>
    <app-health-panel />
  `,
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class PortalHome {}
