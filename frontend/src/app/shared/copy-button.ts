import { Clipboard } from '@angular/cdk/clipboard';
import { ChangeDetectionStrategy, Component, inject, input } from '@angular/core';
import { MatButtonModule } from '@angular/material/button';

import { Toast } from './toast';

/** A button that copies `text`; its label says what ("Copy install command"). */
@Component({
  selector: 'app-copy-button',
  imports: [MatButtonModule],
  template: `<button mat-stroked-button type="button" (click)="copy()">{{ label() }}</button>`,
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class CopyButton {
  private readonly clipboard = inject(Clipboard);
  private readonly toast = inject(Toast);

  readonly text = input.required<string>();
  readonly label = input.required<string>();

  protected copy(): void {
    if (this.clipboard.copy(this.text())) {
      this.toast.done('Copied to the clipboard.');
    } else {
      this.toast.failed('Could not copy: select the text and copy it by hand.');
    }
  }
}
