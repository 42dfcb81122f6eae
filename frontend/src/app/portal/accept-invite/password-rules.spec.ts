import { characterCount, checkPassword } from './password-rules';

describe('password rules', () => {
  it('counts code points, not UTF-16 units', () => {
    expect(characterCount('😀'.repeat(3))).toBe(3);
    expect('😀'.repeat(3).length).toBe(6);
    expect(characterCount('')).toBe(0);
  });

  it('counts as identity does, after NFKC normalisation', () => {
    // U+FB01 LATIN SMALL LIGATURE FI becomes "fi".
    expect(characterCount('\uFB01')).toBe(2);
  });

  it.each([
    [11, false],
    [12, true],
    [128, true],
    [129, false],
  ])('%i characters: length ok is %s', (n, ok) => {
    const password = 'x'.repeat(n);
    expect(checkPassword(password, password)).toMatchObject({ length: n, lengthOk: ok, valid: ok });
  });

  it('needs the repeat to be filled in and equal', () => {
    const password = 'x'.repeat(12);
    expect(checkPassword(password, '').matches).toBe(false);
    expect(checkPassword(password, `${password}y`).valid).toBe(false);
    expect(checkPassword('', '').valid).toBe(false);
  });
});
