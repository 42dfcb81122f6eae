import { ChangeDetectionStrategy, Component } from '@angular/core';

/** Nodes (being built). */
@Component({
  selector: 'app-nodes',
  template: `<h1>Nodes</h1>`,
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class Nodes {}
