// The production build's budget on what a first visit downloads: the initial JavaScript (the
// scripts and module preloads that index.html names) must stay within 300 kB once gzip-compressed,
// as servers send it. angular.json's budgets can only count raw bytes, so this check runs after
// every `make build` and fails it.
//
//   node scripts/check-bundle.mjs [dist/gpulab/browser] [limit in bytes]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

const dir = process.argv[2] ?? 'dist/gpulab/browser';
const limit = Number(process.argv[3] ?? 300_000);
const html = readFileSync(join(dir, 'index.html'), 'utf8');
const names = new Set();
for (const match of html.matchAll(/<script[^>]*\ssrc="([^"]+\.js)"/g)) names.add(match[1]);
for (const match of html.matchAll(/<link[^>]*rel="modulepreload"[^>]*href="([^"]+\.js)"/g)) {
  names.add(match[1]);
}
if (names.size === 0) {
  console.error(`check-bundle: ${dir}/index.html names no script`);
  process.exit(1);
}
let raw = 0;
let compressed = 0;
for (const name of names) {
  const body = readFileSync(join(dir, name));
  raw += body.length;
  compressed += gzipSync(body, { level: 9 }).length;
}
const kb = (n) => `${(n / 1000).toFixed(1)} kB`;
const verdict = compressed <= limit ? 'within' : 'OVER';
console.log(
  `check-bundle: initial JS ${kb(compressed)} gzip (${kb(raw)} raw, ${names.size} files), ${verdict} the ${kb(limit)} budget`,
);
process.exit(compressed <= limit ? 0 : 1);
