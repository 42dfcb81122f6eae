import { ChangeDetectionStrategy, Component } from '@angular/core';

/** Environments (being built). */
@Component({
  selector: 'app-environments',
  template: `<h1>Environments</h1>`,
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class Environments {}
