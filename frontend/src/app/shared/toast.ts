import { Injectable, inject } from '@angular/core';
import { MatSnackBar } from '@angular/material/snack-bar';

/**
 * Short messages after an action ("Key added."), read out by screen readers. They carry no button:
 * Material renders a snack bar's content inside an aria-hidden copy (the live region announces the
 * text), so a button there would be focusable yet hidden from assistive technology; the message
 * goes away by itself instead.
 */
@Injectable({ providedIn: 'root' })
export class Toast {
  private readonly snackBar = inject(MatSnackBar);

  done(message: string): void {
    this.snackBar.open(message, undefined, { duration: 4000, politeness: 'polite' });
  }

  failed(message: string): void {
    this.snackBar.open(message, undefined, { duration: 8000, politeness: 'assertive' });
  }
}
