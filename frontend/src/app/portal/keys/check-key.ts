/**
 * Checks a pasted SSH public key in the browser, before anything is sent: a private key must never
 * leave the person's machine, and most mistakes (a wrapped line, a cut-off copy, the wrong file) are
 * easier to fix when named at once. The server checks again, more strictly (it also tests that the
 * curve points are on their curves): services/identity/src/gpulab_identity/ssh_keys/parse.py, whose
 * rules and limits this follows. The wire formats: RFC 4253 6.6 (ssh-rsa), RFC 5656 3.1 (ecdsa),
 * RFC 8709 4 (ssh-ed25519), OpenSSH PROTOCOL.u2f (the sk- types).
 */

/** The key types the server accepts, best first (parse.py SUPPORTED_TYPES). */
export const KEY_TYPES = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'sk-ssh-ed25519@openssh.com',
  'sk-ecdsa-sha2-nistp256@openssh.com',
  'ssh-rsa',
] as const;
export type KeyType = (typeof KEY_TYPES)[number];

/** parse.py SSH_KEY_MAX_BYTES: 16 KiB. */
export const KEY_MAX_CHARS = 16 * 1024;
/** parse.py MIN_RSA_BITS (NIST SP 800-57 part 1: 128-bit security from 2031 on) and MAX_RSA_BITS. */
export const MIN_RSA_BITS = 3072;
const MAX_RSA_BITS = 16384;

export type KeyProblem =
  | 'empty'
  | 'too_large'
  | 'private_key'
  | 'pem_format'
  | 'multiple_lines'
  | 'multiple_keys'
  | 'certificate'
  | 'options_not_allowed'
  | 'missing_type'
  | 'unsupported_type'
  | 'missing_data'
  | 'bad_base64'
  | 'type_mismatch'
  | 'damaged'
  | 'weak_key'
  | 'bad_comment';

export interface ParsedKey {
  type: KeyType;
  /** The base64 key data, as pasted. */
  data: string;
  comment: string;
  /** The key's size as `ssh-keygen -l` prints it. */
  bits: number;
}

export type KeyCheck =
  { ok: true; key: ParsedKey } | { ok: false; problem: KeyProblem; message: string };

// Every OpenSSH private key file's body starts with the base64 of "openssh-key-v1".
const PRIVATE_BODY = 'b3BlbnNzaC1rZXktdjE';
const BLANKS = /[ \t]+/;
const CURVE_BITS: Record<string, number> = { nistp256: 256, nistp384: 384, nistp521: 521 };
const isKeyType = (word: string): word is KeyType =>
  (KEY_TYPES as readonly string[]).includes(word);

export const PRIVATE_KEY_MESSAGE =
  'This is a PRIVATE key. Never paste it anywhere — not here, not in a chat, not in an email; ' +
  'this page did not send it. Paste the contents of the .pub file instead ' +
  '(id_ed25519.pub, not id_ed25519).';

/** Checks one pasted public key line; says what is wrong in words a person can act on. */
export function checkKey(text: string): KeyCheck {
  if (text.length > KEY_MAX_CHARS) {
    return fail(
      'too_large',
      'This is far too long for a public key: paste only the one line from your .pub file.',
    );
  }
  const line = text.trim();
  if (!line) {
    return fail('empty', 'Paste your public key: the one line from your .pub file.');
  }
  // Before anything else: whatever else is wrong, this is what matters.
  if (
    line.includes('PuTTY-User-Key-File') ||
    /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(line) ||
    line.includes(PRIVATE_BODY)
  ) {
    return fail('private_key', PRIVATE_KEY_MESSAGE);
  }
  if (/BEGIN [A-Z0-9 ]*PUBLIC KEY/.test(line)) {
    const command = line.includes('SSH2')
      ? 'ssh-keygen -i -f key.pub'
      : 'ssh-keygen -i -m PKCS8 -f key.pem';
    return fail(
      'pem_format',
      `This is a PEM or RFC 4716 public key. Convert it with "${command}" and paste the one-line result.`,
    );
  }
  const lines = line.split(/\r\n|\r|\n/).length;
  if (lines > 1) {
    return fail(
      'multiple_lines',
      `Paste exactly one key, on a single line (this has ${lines} lines). If your editor wrapped the line, copy it again from the terminal.`,
    );
  }
  const fields = splitFields(line);
  const type = fields[0];
  if (!isKeyType(type)) {
    return typeProblem(type, fields);
  }
  if (fields.length < 2) {
    return fail('missing_data', `The key data after "${type}" is missing: paste the whole line.`);
  }
  const blob = decodeBase64(fields[1]);
  if (!blob) {
    return fail(
      'bad_base64',
      'The key data is not valid base64: copy the whole line again, without changes.',
    );
  }
  const comment = fields[2] ?? '';
  let bits: number;
  try {
    bits = checkBlob(type, blob);
  } catch (err) {
    if (err instanceof KeyError) {
      return fail(err.problem, err.message);
    }
    throw err;
  }
  const commentProblem = checkComment(comment);
  if (commentProblem) {
    return commentProblem;
  }
  return { ok: true, key: { type, data: fields[1], comment, bits } };
}

/**
 * The line `ssh-keygen -l -f key.pub` prints for a key: `256 SHA256:... ada@lab.org (ED25519)`.
 * `fingerprint` is the server's `SHA256:...`.
 */
export function keygenLine(
  key: Pick<ParsedKey, 'type' | 'bits'>,
  fingerprint: string,
  comment: string,
): string {
  return `${key.bits} ${fingerprint} ${comment || 'no comment'} (${keygenTypeName(key.type)})`;
}

/** The name `ssh-keygen -l` gives a type, in brackets at the end of its line (sshkey.c sshkey_type()). */
export function keygenTypeName(type: string): string {
  if (type === 'ssh-ed25519') return 'ED25519';
  if (type === 'sk-ssh-ed25519@openssh.com') return 'ED25519-SK';
  if (type === 'sk-ecdsa-sha2-nistp256@openssh.com') return 'ECDSA-SK';
  if (type.startsWith('ecdsa-sha2-')) return 'ECDSA';
  if (type === 'ssh-rsa') return 'RSA';
  return type;
}

function fail(problem: KeyProblem, message: string): KeyCheck {
  return { ok: false, problem, message };
}

/** Type, key data and the comment (the rest of the line, blanks inside it kept). */
function splitFields(line: string): string[] {
  const fields: string[] = [];
  let rest = line;
  while (fields.length < 2) {
    const match = BLANKS.exec(rest);
    if (!match) {
      break;
    }
    fields.push(rest.slice(0, match.index));
    rest = rest.slice(match.index + match[0].length);
  }
  fields.push(rest);
  return fields;
}

function typeProblem(type: string, fields: string[]): KeyCheck {
  const shown = type.length > 40 ? `${type.slice(0, 40)}…` : type;
  if (type === 'ssh-dss') {
    return fail(
      'unsupported_type',
      'DSA keys are no longer safe. Make an ed25519 key (ssh-keygen -t ed25519) and paste that.',
    );
  }
  if (/-cert-v0[01]@openssh\.com$/.test(type)) {
    return fail(
      'certificate',
      `"${shown}" is an SSH certificate; paste the plain public key (the .pub file) instead.`,
    );
  }
  if (fields.join(' ').split(BLANKS).some(isKeyType)) {
    return fail(
      'options_not_allowed',
      `Remove what comes before the key type (found "${shown}"): paste only the line from your .pub file.`,
    );
  }
  if (type.startsWith('AAAA')) {
    return fail(
      'missing_type',
      'The key type is missing: the line must start with ssh-ed25519, ssh-rsa or similar. Paste the whole line.',
    );
  }
  return fail(
    'unsupported_type',
    `"${shown}" is not a key type gpulab accepts. Use ssh-ed25519 (best), ecdsa-sha2-nistp256/384/521, the security-key types sk-ssh-ed25519@openssh.com or sk-ecdsa-sha2-nistp256@openssh.com, or ssh-rsa.`,
  );
}

/** The decoded bytes, or null unless `data` is canonical base64 (what the server stores and compares). */
function decodeBase64(data: string): Uint8Array | null {
  if (!data || data.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(data)) {
    return null;
  }
  let binary: string;
  try {
    binary = atob(data);
  } catch {
    return null;
  }
  // Unused bits that are not zero decode fine but are another spelling of the same key.
  if (!binary || btoa(binary) !== data) {
    return null;
  }
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

class KeyError extends Error {
  constructor(
    readonly problem: KeyProblem,
    message: string,
  ) {
    super(message);
  }
}

const damaged = (detail: string) =>
  new KeyError(
    'damaged',
    `The key data is damaged (${detail}): copy the line from your .pub file again.`,
  );

/** The SSH wire encoding (RFC 4251 5): a uint32 length in front of each string and mpint. */
class Reader {
  private pos = 0;
  constructor(private readonly data: Uint8Array) {}

  string(): Uint8Array {
    if (this.data.length - this.pos < 4) {
      throw damaged('it ends in the middle of a field');
    }
    const view = new DataView(this.data.buffer, this.data.byteOffset + this.pos, 4);
    const size = view.getUint32(0);
    const start = this.pos + 4;
    if (size > this.data.length - start) {
      throw damaged('a field is longer than the key data');
    }
    this.pos = start + size;
    return this.data.subarray(start, this.pos);
  }

  /** A printable ASCII name, or null when the bytes are anything else. */
  text(): string | null {
    const raw = this.string();
    return raw.every((b) => b >= 0x20 && b < 0x7f) ? String.fromCharCode(...raw) : null;
  }

  end(): void {
    if (this.pos !== this.data.length) {
      throw damaged('there is unexpected data after the key');
    }
  }
}

/** Checks the decoded key against its declared type; returns its size in bits. */
function checkBlob(type: KeyType, blob: Uint8Array): number {
  const reader = new Reader(blob);
  let inner: string | null;
  try {
    inner = reader.text();
  } catch {
    // Not even a length and a name: text that happens to be base64, not a key.
    throw new KeyError(
      'type_mismatch',
      `The key data is not a "${type}" key: copy the whole line again, without editing it.`,
    );
  }
  if (inner !== type) {
    const what = inner && inner.length <= 64 ? `a "${inner}" key` : 'not an SSH key';
    throw new KeyError(
      'type_mismatch',
      `The line says "${type}" but the key data is ${what}: copy the whole line again, without editing it.`,
    );
  }
  let bits: number;
  if (type === 'ssh-ed25519' || type === 'sk-ssh-ed25519@openssh.com') {
    if (reader.string().length !== 32) {
      throw damaged('an ed25519 key must be 32 bytes');
    }
    bits = 256;
  } else if (type === 'ssh-rsa') {
    bits = checkRsa(reader.string(), reader.string());
  } else {
    const curve = type
      .replace(/^sk-/, '')
      .replace(/@openssh\.com$/, '')
      .replace(/^ecdsa-sha2-/, '');
    if (reader.text() !== curve) {
      throw damaged('its curve does not match the key type');
    }
    bits = CURVE_BITS[curve];
    const point = reader.string();
    // Uncompressed (SEC 1 2.3.3): 0x04, then X and Y of the field's size.
    if (point.length !== 1 + 2 * Math.ceil(bits / 8) || point[0] !== 4) {
      throw damaged('the curve point has the wrong encoding');
    }
  }
  if (type.startsWith('sk-') && !reader.text()) {
    throw damaged('the security key application is not printable ASCII');
  }
  reader.end();
  return bits;
}

function checkRsa(e: Uint8Array, n: Uint8Array): number {
  const bits = bitLength(n);
  const odd = (x: Uint8Array) => x.length > 0 && (x[x.length - 1] & 1) === 1;
  if ((e[0] ?? 0) & 0x80 || (n[0] ?? 0) & 0x80 || !odd(n) || !odd(e) || bitLength(e) < 2) {
    throw damaged('its RSA numbers are not a valid public key');
  }
  if (bits > MAX_RSA_BITS) {
    throw damaged(`RSA keys above ${MAX_RSA_BITS} bits cannot be used by OpenSSH`);
  }
  if (bits < MIN_RSA_BITS) {
    throw new KeyError(
      'weak_key',
      `This RSA key has ${bits} bits; gpulab needs at least ${MIN_RSA_BITS}. Better: make an ed25519 key with ssh-keygen -t ed25519.`,
    );
  }
  return bits;
}

/** The number of bits of a big-endian unsigned number. */
function bitLength(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length && bytes[i] === 0) {
    i++;
  }
  return i === bytes.length ? 0 : (bytes.length - i - 1) * 8 + (32 - Math.clz32(bytes[i]));
}

// Control characters, and the bidirectional overrides that could make a comment read as another key.
const BAD_COMMENT =
  /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

function checkComment(comment: string): KeyCheck | null {
  const words = comment.split(BLANKS);
  if (words.some((word, i) => isKeyType(word) && (words[i + 1] ?? '').startsWith('AAAA'))) {
    return fail('multiple_keys', 'This looks like more than one key: add one key at a time.');
  }
  if (BAD_COMMENT.test(comment)) {
    return fail(
      'bad_comment',
      'The comment after the key contains control characters: remove them, or leave the comment out.',
    );
  }
  return null;
}
