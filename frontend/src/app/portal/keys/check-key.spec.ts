import { KeyCheck, checkKey, keygenLine, keygenTypeName } from './check-key';
import {
  ECDSA_256,
  ECDSA_256_KEYGEN,
  ECDSA_384,
  ECDSA_384_KEYGEN,
  ECDSA_521,
  ECDSA_521_KEYGEN,
  ED25519,
  ED25519_KEYGEN,
  ED25519_NO_COMMENT,
  ED25519_NO_COMMENT_KEYGEN,
  PRIVATE_OPENSSH,
  RSA_2048,
  RSA_3072,
  RSA_3072_KEYGEN,
  SK_ECDSA,
  SK_ECDSA_KEYGEN,
  SK_ED25519,
  SK_ED25519_KEYGEN,
  fingerprintOf,
} from './test-keys.testing';

function problemOf(check: KeyCheck): string {
  return check.ok ? 'ok' : check.problem;
}

function messageOf(check: KeyCheck): string {
  return check.ok ? '' : check.message;
}

/** Base64 of fields in the SSH wire format: each a uint32 length, then its bytes. */
function wire(...fields: (string | number[])[]): string {
  const bytes: number[] = [];
  for (const field of fields) {
    const data = typeof field === 'string' ? Array.from(field, (c) => c.charCodeAt(0)) : field;
    const n = data.length;
    bytes.push(n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255, ...data);
  }
  return btoa(String.fromCharCode(...bytes));
}

describe('checkKey', () => {
  describe('accepts', () => {
    it.each([
      ['ssh-ed25519', ED25519, ED25519_KEYGEN],
      ['ssh-ed25519 without a comment', ED25519_NO_COMMENT, ED25519_NO_COMMENT_KEYGEN],
      ['ssh-rsa (3072 bits)', RSA_3072, RSA_3072_KEYGEN],
      ['ecdsa-sha2-nistp256', ECDSA_256, ECDSA_256_KEYGEN],
      ['ecdsa-sha2-nistp384', ECDSA_384, ECDSA_384_KEYGEN],
      ['ecdsa-sha2-nistp521', ECDSA_521, ECDSA_521_KEYGEN],
      ['sk-ssh-ed25519@openssh.com', SK_ED25519, SK_ED25519_KEYGEN],
      ['sk-ecdsa-sha2-nistp256@openssh.com', SK_ECDSA, SK_ECDSA_KEYGEN],
    ])('%s, sized and named as ssh-keygen -l does', (_, line, keygen) => {
      const check = checkKey(line);
      expect(check.ok).toBe(true);
      if (!check.ok) return;
      expect(check.key.type).toBe(line.split(' ')[0]);
      expect(check.key.data).toBe(line.split(' ')[1]);
      expect(keygenLine(check.key, fingerprintOf(keygen), check.key.comment)).toBe(keygen);
    });

    it('blanks and a line break around the line, as a terminal copy leaves them', () => {
      const check = checkKey(`\n  ${ED25519}\r\n`);
      expect(check.ok && check.key.comment).toBe('ada@lab.org');
    });

    it('a comment with spaces in it, kept whole', () => {
      const check = checkKey(`${ED25519_NO_COMMENT}   Ada's   laptop (work)`);
      expect(check.ok && check.key.comment).toBe("Ada's   laptop (work)");
    });

    it('tabs between the fields', () => {
      const [type, data] = ED25519.split(' ');
      const check = checkKey(`${type}\t${data}\tada`);
      expect(check.ok && check.key.comment).toBe('ada');
    });

    it('a comment that is not ASCII', () => {
      const check = checkKey(`${ED25519_NO_COMMENT} Adèle’s clé 🔑`);
      expect(check.ok && check.key.comment).toBe('Adèle’s clé 🔑');
    });
  });

  describe('refuses', () => {
    it('nothing at all, asking for the key', () => {
      expect(problemOf(checkKey(''))).toBe('empty');
      expect(problemOf(checkKey(' \n\t '))).toBe('empty');
      expect(messageOf(checkKey(''))).toContain('.pub');
    });

    it('an OpenSSH private key, warning that it must never be pasted anywhere', () => {
      const check = checkKey(PRIVATE_OPENSSH);
      expect(problemOf(check)).toBe('private_key');
      expect(messageOf(check)).toContain('PRIVATE key');
      expect(messageOf(check)).toContain('Never paste it anywhere');
      expect(messageOf(check)).toContain('.pub');
    });

    it.each([
      ['PEM RSA', `-----BEGIN RSA ${'PRIVATE'} KEY-----\nMIIEow...\n-----END RSA PRIVATE KEY-----`],
      ['PKCS#8', `-----BEGIN ${'PRIVATE'} KEY-----\nMIIEvQ...`],
      ['encrypted PKCS#8', `-----BEGIN ENCRYPTED ${'PRIVATE'} KEY-----`],
      ['PuTTY', 'PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: ada'],
      ['PuTTY, first line only', 'PuTTY-User-Key-File-2: ssh-rsa'],
      ['an OpenSSH private key body without its header', PRIVATE_OPENSSH.split('\n')[1]],
    ])('a private key (%s)', (_, text) => {
      expect(problemOf(checkKey(text))).toBe('private_key');
    });

    it('a private key even when a public key is pasted with it', () => {
      expect(problemOf(checkKey(`${ED25519}\n${PRIVATE_OPENSSH}`))).toBe('private_key');
    });

    it('two lines, saying how many', () => {
      const check = checkKey(`${ED25519}\n${ECDSA_256}`);
      expect(problemOf(check)).toBe('multiple_lines');
      expect(messageOf(check)).toContain('this has 2 lines');
    });

    it('a key wrapped onto two lines by an editor', () => {
      const wrapped = `${RSA_3072.slice(0, 70)}\r\n${RSA_3072.slice(70)}`;
      expect(problemOf(checkKey(wrapped))).toBe('multiple_lines');
    });

    it('two keys on one line', () => {
      expect(problemOf(checkKey(`${ED25519} ${ECDSA_256}`))).toBe('multiple_keys');
    });

    it('an RFC 4716 public key, with the command that converts it', () => {
      const rfc4716 = [
        '---- BEGIN SSH2 PUBLIC KEY ----',
        'Comment: "256-bit ED25519, converted by ada@lab from OpenSSH"',
        'AAAAC3NzaC1lZDI1NTE5AAAAIMFX0WkEjeVVULFLoINLtZaFBqwvaz94jyuG0uVsC59h',
        '---- END SSH2 PUBLIC KEY ----',
      ].join('\n');
      const check = checkKey(rfc4716);
      expect(problemOf(check)).toBe('pem_format');
      expect(messageOf(check)).toContain('ssh-keygen -i -f key.pub');
    });

    it('the key data without its type', () => {
      expect(problemOf(checkKey(ED25519.split(' ').slice(1).join(' ')))).toBe('missing_type');
    });

    it('the type without the key data', () => {
      const check = checkKey('ssh-ed25519');
      expect(problemOf(check)).toBe('missing_data');
      expect(messageOf(check)).toContain('"ssh-ed25519"');
    });

    it.each([
      ['ssh-dss', 'DSA keys are no longer safe'],
      ['ssh-ed448', '"ssh-ed448" is not a key type gpulab accepts'],
      ['SSH-ED25519', 'is not a key type'],
    ])('an unknown or unsafe type (%s)', (type, words) => {
      const check = checkKey(`${type} AAAAC3NzaC1lZDI1NTE5 x`);
      expect(problemOf(check)).toBe('unsupported_type');
      expect(messageOf(check)).toContain(words);
    });

    it('a certificate', () => {
      expect(problemOf(checkKey('ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1l x'))).toBe(
        'certificate',
      );
    });

    it('authorized_keys options before the key', () => {
      const check = checkKey(`from="10.0.0.0/8",no-pty ${ED25519}`);
      expect(problemOf(check)).toBe('options_not_allowed');
      expect(messageOf(check)).toContain('from=');
    });

    it.each([
      ['a character outside base64', (data: string) => `${data.slice(0, 20)}!${data.slice(21)}`],
      ['a cut-off copy', (data: string) => data.slice(0, -3)],
      ['a missing padding', (data: string) => data.replace(/=+$/, '')],
      [
        'a changed unused bit (a second spelling of the same key)',
        (data: string) => data.replace(/M=$/, 'N='),
      ],
      ['letters from another alphabet', (data: string) => data.replace('A', 'А')],
    ])('bad base64: %s', (_, mangle) => {
      const [type, data] = ECDSA_256.split(' ');
      expect(problemOf(checkKey(`${type} ${mangle(data)} ec256`))).toBe('bad_base64');
    });

    it('key data of another type than the line says', () => {
      const [, data] = ED25519.split(' ');
      const check = checkKey(`ssh-rsa ${data} ada`);
      expect(problemOf(check)).toBe('type_mismatch');
      expect(messageOf(check)).toBe(
        'The line says "ssh-rsa" but the key data is a "ssh-ed25519" key: copy the whole line again, without editing it.',
      );
    });

    it('base64 that is no SSH key at all', () => {
      expect(problemOf(checkKey(`ssh-ed25519 ${btoa('hello, world')}`))).toBe('type_mismatch');
      expect(
        problemOf(checkKey(`ssh-ed25519 ${btoa('\u0000\u0000\u0000\u000bssh-ed25519')}`)),
      ).toBe('damaged');
    });

    it('an ecdsa key whose curve field is not the curve its type names', () => {
      const point = [4, ...new Array(96).fill(7)];
      const check = checkKey(
        `ecdsa-sha2-nistp384 ${wire('ecdsa-sha2-nistp384', 'nistp256', point)}`,
      );
      expect(messageOf(check)).toContain('its curve does not match the key type');
    });

    it('an ecdsa point of the wrong size, or compressed', () => {
      const type = 'ecdsa-sha2-nistp256';
      expect(
        messageOf(checkKey(`${type} ${wire(type, 'nistp256', [4, ...new Array(96).fill(7)])}`)),
      ).toContain('wrong encoding');
      expect(
        messageOf(checkKey(`${type} ${wire(type, 'nistp256', [2, ...new Array(64).fill(7)])}`)),
      ).toContain('wrong encoding');
    });

    it('an ed25519 key one byte short', () => {
      const check = checkKey(`ssh-ed25519 ${wire('ssh-ed25519', new Array(31).fill(9))}`);
      expect(messageOf(check)).toContain('an ed25519 key must be 32 bytes');
    });

    it('data after the key', () => {
      const check = checkKey(`ssh-ed25519 ${wire('ssh-ed25519', new Array(32).fill(9), 'more')}`);
      expect(messageOf(check)).toContain('unexpected data after the key');
    });

    it('a security key without its application', () => {
      const type = 'sk-ssh-ed25519@openssh.com';
      expect(messageOf(checkKey(`${type} ${wire(type, new Array(32).fill(9))}`))).toContain(
        'ends in the middle of a field',
      );
    });

    it('a truncated blob, however it is re-encoded', () => {
      const [type, data] = RSA_3072.split(' ');
      const cut = btoa(atob(data).slice(0, 100));
      expect(problemOf(checkKey(`${type} ${cut}`))).toBe('damaged');
    });

    it('an RSA key under 3072 bits, suggesting ed25519', () => {
      const check = checkKey(RSA_2048);
      expect(problemOf(check)).toBe('weak_key');
      expect(messageOf(check)).toContain('This RSA key has 2048 bits');
      expect(messageOf(check)).toContain('ssh-keygen -t ed25519');
    });

    it('an RSA key with an even exponent', () => {
      const [type, data] = RSA_3072.split(' ');
      // e = 65537 is 01 00 01 after its length; 01 00 00 is even.
      const blob = atob(data);
      const even = btoa(blob.slice(0, 17) + '\u0000' + blob.slice(18));
      expect(messageOf(checkKey(`${type} ${even}`))).toContain('not a valid public key');
    });

    it('a comment with control characters or text-direction overrides', () => {
      expect(problemOf(checkKey(`${ED25519} ada\u0007`))).toBe('bad_comment');
      expect(problemOf(checkKey(`${ED25519} \u202Egro.bal@ada`))).toBe('bad_comment');
    });

    it('anything over 16 KiB without looking at it further', () => {
      expect(problemOf(checkKey(`${ED25519} ${'x'.repeat(16 * 1024)}`))).toBe('too_large');
    });
  });

  it('names the types as ssh-keygen does', () => {
    expect(keygenTypeName('ssh-ed25519')).toBe('ED25519');
    expect(keygenTypeName('ecdsa-sha2-nistp521')).toBe('ECDSA');
    expect(keygenTypeName('ssh-rsa')).toBe('RSA');
    expect(keygenTypeName('sk-ssh-ed25519@openssh.com')).toBe('ED25519-SK');
    expect(keygenTypeName('sk-ecdsa-sha2-nistp256@openssh.com')).toBe('ECDSA-SK');
  });
});
