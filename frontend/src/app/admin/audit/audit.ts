import { ChangeDetectionStrategy, Component } from '@angular/core';

/** Audit log (being built). */
@Component({
  selector: 'app-audit',
  template: `<h1>Audit log</h1>`,
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class Audit {}
