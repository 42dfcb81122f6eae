import { ChangeDetectionStrategy, Component } from '@angular/core';

/** Assignments (being built). */
@Component({
  selector: 'app-assignments',
  template: `<h1>Assignments</h1>`,
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class Assignments {}
