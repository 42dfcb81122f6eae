import { ChangeDetectionStrategy, Component } from '@angular/core';

/** Users (being built). */
@Component({
  selector: 'app-users',
  template: `<h1>Users</h1>`,
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class Users {}
