import { AbstractControl, FormGroup } from '@angular/forms';

import { asSentence, problemOf } from '../../api';

// A 422 `invalid_request` names what is wrong where (`errors: [{loc, msg}]`, loc as FastAPI
// writes it: ["body", "hostname"]). The forms show each message under its own field.

/** The server's message per field name, from a failed request; empty when it named none. */
export function fieldErrors(err: unknown): Record<string, string> {
  const found: Record<string, string> = {};
  for (const e of problemOf(err)?.errors ?? []) {
    const field = [...e.loc].reverse().find((part) => typeof part === 'string' && part !== 'body');
    if (typeof field === 'string' && !(field in found)) {
      found[field] = asSentence(e.msg.replace(/^Value error, /, ''));
    }
  }
  return found;
}

/**
 * Puts the server's messages on the form's controls (`server` error, shown by the template) and
 * says whether any control took one. Editing the control clears it, as its validators run again.
 */
export function showFieldErrors(
  form: FormGroup,
  err: unknown,
  names: Record<string, string> = {},
): boolean {
  let shown = false;
  for (const [field, message] of Object.entries(fieldErrors(err))) {
    const control: AbstractControl | null = form.get(names[field] ?? field);
    if (control) {
      control.setErrors({ ...(control.errors ?? {}), server: message });
      control.markAsTouched();
      shown = true;
    }
  }
  return shown;
}
