// Reference GPT-2 token ids for lowbit's differential test (tests/test_tokenizer_gpt2_ref.c).
// Usage: node gpt2_ref.mjs FILE
// Prints one line of space-separated ids for every line of FILE (each line encoded with its
// trailing "\n"), then one line "WHOLE" followed by the ids of the whole file in one piece.
// The ids come from the npm package gpt-tokenizer (r50k_base, which is GPT-2's encoding),
// installed under tests/npm by scripts/install-deps.sh.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const file = process.argv[2];
if (!file) {
  console.error('usage: node gpt2_ref.mjs FILE');
  process.exit(2);
}

// Resolve the package from tests/npm, wherever this script is run from.
const require = createRequire(new URL('../npm/package.json', import.meta.url));
let encode;
try {
  ({ encode } = require('gpt-tokenizer/encoding/r50k_base'));
} catch (e) {
  console.error(`gpt2_ref.mjs: gpt-tokenizer is not installed in tests/npm ` +
                `(run scripts/install-deps.sh or "cd tests/npm && npm install"): ${e.message}`);
  process.exit(3);
}

// Special-token text such as "<|endoftext|>" is encoded as plain text, as lowbit does.
const options = { disallowedSpecial: new Set() };
const text = readFileSync(file, 'utf8');
const parts = text.split('\n');
const out = [];
for (let i = 0; i < parts.length; i++) {
  const line = i < parts.length - 1 ? parts[i] + '\n' : parts[i];
  if (line.length === 0) continue;
  out.push(encode(line, options).join(' '));
}
out.push('WHOLE ' + encode(text, options).join(' '));
process.stdout.write(out.join('\n') + '\n');
