import { ChangeDetectionStrategy, Component } from '@angular/core';

/** My GPUs (being built). */
@Component({
  selector: 'app-my-gpus',
  template: `<h1>My GPUs</h1>`,
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class MyGpus {}
