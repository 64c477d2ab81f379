// Reads criterion's estimates for the `sphinx` bench and prints the ratio table
// (reference time / our time, so > 1 means we are faster).
import { readFileSync, existsSync } from 'node:fs';

const dir = 'target/criterion';
const mean = (group, name) => {
  const f = `${dir}/${group}/${name}/new/estimates.json`;
  if (!existsSync(f)) return null;
  return JSON.parse(readFileSync(f, 'utf8')).mean.point_estimate / 1000; // µs
};
const rows = [
  ['build, 3 hops, 2048 B', 'build', 'ours/3', 'sphinx-packet/3'],
  ['build, 4 hops, 2048 B', 'build', 'ours/4', 'sphinx-packet/4'],
  ['build, 5 hops, 2048 B', 'build', 'ours/5', 'sphinx-packet/5'],
  ['build, 4 hops, keys without tables', 'build', 'ours-untabled/4', 'sphinx-packet/4'],
  ['one hop of processing', 'process-hop', 'ours', 'sphinx-packet'],
  ['SURB creation (4 hops)', 'surb-create', 'ours', 'sphinx-packet'],
  ['SURB use (2048 B)', 'surb-use', 'ours', 'sphinx-packet'],
];
console.log('| operation | ours (µs) | sphinx-packet 0.8.0 (µs) | ratio (ref / ours) |');
console.log('|---|---:|---:|---:|');
for (const [label, group, ours, ref] of rows) {
  const a = mean(group, ours);
  const b = mean(group, ref);
  if (a == null || b == null) {
    console.log(`| ${label} | n/a | n/a | n/a |`);
    continue;
  }
  console.log(`| ${label} | ${a.toFixed(1)} | ${b.toFixed(1)} | ${(b / a).toFixed(2)}× |`);
}
