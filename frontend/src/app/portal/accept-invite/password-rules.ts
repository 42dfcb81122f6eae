/**
 * The rules identity applies to a new password (services/identity passwords.py, with the limits from
 * gpulab_core.contracts.identity PASSWORD_MIN and PASSWORD_MAX): 12 to 128 characters, counted as
 * Unicode code points of the NFKC-normalised text, so an emoji is one character, as a person counts it.
 */
export const PASSWORD_MIN = 12;
export const PASSWORD_MAX = 128;

export interface PasswordCheck {
  /** Characters as the server counts them. */
  length: number;
  lengthOk: boolean;
  tooLong: boolean;
  /** The repeat is filled in and equal to the password. */
  matches: boolean;
  valid: boolean;
}

/**
 * Code points, not UTF-16 units: `'😀'.length` is 2, but it is one character to identity. NFKC first,
 * because identity counts after normalising (a ligature such as "ﬁ" becomes two letters).
 */
export function characterCount(value: string): number {
  return [...value.normalize('NFKC')].length;
}

export function checkPassword(password: string, repeat: string): PasswordCheck {
  const length = characterCount(password);
  const lengthOk = length >= PASSWORD_MIN && length <= PASSWORD_MAX;
  const matches = repeat.length > 0 && repeat === password;
  return { length, lengthOk, tooLong: length > PASSWORD_MAX, matches, valid: lengthOk && matches };
}
