import { ChangeDetectionStrategy, Component } from '@angular/core';

/** SSH keys (being built). */
@Component({
  selector: 'app-keys',
  template: `<h1>SSH keys</h1>`,
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class Keys {}
