import { hostnameError, ipError, isIPv4, isIPv6 } from './node-checks';

describe('node checks', () => {
  it('accepts RFC 1123 host names and says what is wrong with others', () => {
    for (const ok of ['gpu-01', 'GPU01.lab.org', '1host', 'a', `${'a'.repeat(63)}.b`]) {
      expect(hostnameError(ok)).toBeNull();
    }
    expect(hostnameError('')).toBe('Enter the host name.');
    expect(hostnameError('   ')).toBe('Enter the host name.');
    for (const bad of ['-gpu', 'gpu-', 'gpu_01', 'gpu..lab', 'gpu.', '.gpu', 'gpü', 'gpu 01']) {
      expect(hostnameError(bad)).toContain('RFC 1123');
    }
    expect(hostnameError(`${'a'.repeat(64)}.lab`)).toContain('at most 63 characters');
    expect(hostnameError(Array(64).fill('abcd').join('.'))).toContain('at most 253 characters');
  });

  it('reads IPv4 as Python does: four numbers up to 255, no leading zeros', () => {
    expect(isIPv4('192.0.2.10')).toBe(true);
    expect(isIPv4('0.0.0.0')).toBe(true);
    expect(isIPv4('255.255.255.255')).toBe(true);
    for (const bad of ['256.1.1.1', '1.2.3', '1.2.3.4.5', '01.2.3.4', '1.2.3.a', '', '1..2.3']) {
      expect(isIPv4(bad)).toBe(false);
    }
  });

  it('reads IPv6 with one "::" at most and an optional IPv4 tail', () => {
    for (const ok of [
      '::1',
      '::',
      '2001:db8::10',
      'fe80::1:2',
      '1:2:3:4:5:6:7:8',
      '1:2:3:4:5:6:7::',
      '::ffff:192.0.2.1',
      '1:2:3:4:5:6:1.2.3.4',
      'ABCD::ef',
    ]) {
      expect(isIPv6(ok)).toBe(true);
    }
    for (const bad of [
      '1:2:3:4:5:6:7:8:9',
      '1::2::3',
      '12345::',
      ':1::2',
      '1:2:3:4:5:6:7:8::',
      '::ffff:1.2.3.256',
      'g::1',
      '192.0.2.1',
      ':::',
    ]) {
      expect(isIPv6(bad)).toBe(false);
    }
  });

  it('says what an address must look like', () => {
    expect(ipError(' 192.0.2.10 ')).toBeNull();
    expect(ipError('2001:db8::1')).toBeNull();
    expect(ipError('')).toBe('Enter the management IP address.');
    expect(ipError('gpu-01')).toContain('IPv4 address (192.0.2.10) or an IPv6 address');
    expect(ipError('fe80::1%eth0')).toContain('without a zone');
  });
});
