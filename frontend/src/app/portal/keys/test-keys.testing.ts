// Real public keys made with `ssh-keygen` (OpenSSH 9.2) for the specs, with what `ssh-keygen -l -f`
// printed for each. The sk- keys were put together from the ed25519 and nistp256 keys above them in
// the security-key wire format (OpenSSH PROTOCOL.u2f): no hardware token was at hand; ssh-keygen -l
// reads them all the same.

export const ED25519 =
  'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMFX0WkEjeVVULFLoINLtZaFBqwvaz94jyuG0uVsC59h ada@lab.org';
export const ED25519_KEYGEN =
  '256 SHA256:cNiOQlTtzQmQPbmMubP1eoqO1jnSvSON1CSH4kAMlPw ada@lab.org (ED25519)';

export const ED25519_NO_COMMENT =
  'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIey2I4P1OYdc6G+QcBtIvzFFpdD4l8wEAp+4DkJJ+cE';
export const ED25519_NO_COMMENT_KEYGEN =
  '256 SHA256:sEWtCPWNKuMW3GN34aOtERm8PVnZxYwUI42TTHrlqck no comment (ED25519)';

export const RSA_3072 =
  'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQCpoFqpEuLnycmq6Nma3dKElCcvnFQhLUakuTX838boTB6Qb0+V7Q4BJOISX9rccQddDDkZkybcY4PYfq9L5V45jH8FDDMe0mkiCCj/+R9lPIQRYTvPqpQ+5Xk2awxxmMivc1WYcA/BKr79JeJuiXsLPkdMpYqBwEE7an9JgNtWiYOLldEzUzwWXwZPA5YNam5hiTTxRqL56aQtEKKlddR77FItzZbDHhGu0WsBVn6/F/6/Zw2sjKg9z44oCxkJDPUNNPIlb6/F4aCyxBPGK8sWdWMZY66At3Y9goqVIy+RvhtU7AVZ7BmrfbECAnR1TzMcv1Dye/L4/9/E7afqlB6W/8v1vuH8N+fKSAEvSvMRWIHf+mB3FxUFCT92HR1byFNDwgAgxU5N8jHBd35aqFDa9HVQq7SlDEy6nIcZkePbr3bI21hR2SeQ2OXE8T020k0R31s9az2YDgMI+SF2zRaUW9i2UF1uPKtqtY/ADA+zaFtJY6zD8LozGfe8ExUsx8M= ada@laptop';
export const RSA_3072_KEYGEN =
  '3072 SHA256:80HJ9oPZHBl7kt4hil16Yky/Joo0k+46Uu4iL67tGKE ada@laptop (RSA)';

export const RSA_2048 =
  'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQChH91/OnraApjDdn4vgygOBI01Z3y8uIdWO7ZlDulOjytM5WvyEwBgRWqiGxEETHtUeO013fXdOuS+/iIe/cYKF9dttyZ8Pt98wBMsgjgy4GIqYNYATDf2gzp4Jq3WGtn3kYRek/GJjSu6lYR5HGND000WzuX9+DFct2/KKskzGBRwnku6/sMXrhJB4rk1CN5DMfrJzck/3fljqftkI2Xbz49Cai18xVozGk6gXSOI+YWeyX0tkvxkYaqqOU5OvQSAz5ZDarKYDZaifnO2P3KcmsE+PHiDAy1UdoRInEzmdV3giLqSta5P2bxQvZ7UUgdAtdSxw4ehEz+FPyRos+CP old';

export const ECDSA_256 =
  'ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBMlR8lVEh/Jmh/f6eziiEZ3H1+/+q0ExT1TmFRMLj01ule9RcnwoEFJ/eEUIRgBLf0Tb2DIf0RWMtJkp+wv8XPM= ec256';
export const ECDSA_256_KEYGEN =
  '256 SHA256:fwfsA6V6JZ7nzSFW9/8EEAucYa5gLHa0YDw4nCELPX8 ec256 (ECDSA)';

export const ECDSA_384 =
  'ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBFNDSPkIeQ1xPS4y5Ut/LgBpIRxpL7TYC33Uy709hTy5qcd0/5yIFFQ3fMWT+ghXt/cHH0gUqQhCFC0cxg99OuSRyk2vWr+6kvKFJ88ozTknHoluSkiZ17b0MgiAohMOzg== ec384';
export const ECDSA_384_KEYGEN =
  '384 SHA256:O5ZpRoIvqvUm8eF0/hdmXzOsYIiij8OB8j384ULEGoA ec384 (ECDSA)';

export const ECDSA_521 =
  'ecdsa-sha2-nistp521 AAAAE2VjZHNhLXNoYTItbmlzdHA1MjEAAAAIbmlzdHA1MjEAAACFBAH5jfRvS2JGaYU318MtJz40m6Y9b/S1jU8O97o8ZlUimiXlwVcf86xB2NM0T0L37VEkDc81Ui/pezfD1xdUne5yPgCmH8X0jCmkRTbp5GHhtj3OapX/pQeDQGXMe+pY5LxA4NzCgUKoX2CdDZar8jBYwNAV4a++Nk1m7PP+c53gkpPVNg== ec521';
export const ECDSA_521_KEYGEN =
  '521 SHA256:/hgWTq6zGFgDvyoNykVTz30sRKj+A1vWFtJdaFXy2Mc ec521 (ECDSA)';

export const SK_ED25519 =
  'sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIMFX0WkEjeVVULFLoINLtZaFBqwvaz94jyuG0uVsC59hAAAABHNzaDo= yubikey';
export const SK_ED25519_KEYGEN =
  '256 SHA256:OjVfYQSTqfsH0uOAHFDOFHhb258P4l7g2cXKQCkixjY yubikey (ED25519-SK)';

export const SK_ECDSA =
  'sk-ecdsa-sha2-nistp256@openssh.com AAAAInNrLWVjZHNhLXNoYTItbmlzdHAyNTZAb3BlbnNzaC5jb20AAAAIbmlzdHAyNTYAAABBBMlR8lVEh/Jmh/f6eziiEZ3H1+/+q0ExT1TmFRMLj01ule9RcnwoEFJ/eEUIRgBLf0Tb2DIf0RWMtJkp+wv8XPMAAAAEc3NoOg== yubikey-ec';
export const SK_ECDSA_KEYGEN =
  '256 SHA256:J52tfjoaj1ATzM5W/ApeQjqavdeBfhuqxqN6pNWgyNo yubikey-ec (ECDSA-SK)';

/** `key`'s SHA256 fingerprint as `ssh-keygen -l` printed it: what the server returns. */
export const fingerprintOf = (keygen: string) => keygen.split(' ')[1];

// A private key as `ssh-keygen` writes it (the header split so that secret scanners do not take this
// spec for a leaked key; the body is the start of a throwaway key's, nothing secret).
export const PRIVATE_OPENSSH = [
  '-----BEGIN OPENSSH ' + 'PRIVATE KEY-----',
  'b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW',
  'QyNTUxOQAAACDBV9FpBI3lVVCxS6CDS7WWhQasL2s/eI8rhtLlbAufYQAAAJAjEjE5IxIx',
  '-----END OPENSSH ' + 'PRIVATE KEY-----',
].join('\n');
