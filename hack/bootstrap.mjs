#!/usr/bin/env node
// Dependency-free bootstrap, run before `npm test`, `npm run demo` and `npm run bench`:
// installs npm dependencies when they are missing or stale, and builds (or finds cached)
// the local control plane binaries. Plain Node so it works on a fresh clone.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureMoto } from './moto.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const step = (msg) => process.stderr.write(`[bootstrap] ${msg}\n`);

function run(cmd, args) {
  const result = spawnSync(cmd, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
  if (result.status !== 0) {
    step(`${cmd} ${args.join(' ')} failed (exit ${result.status ?? result.signal})`);
    process.exit(result.status ?? 1);
  }
}

function mtime(path) {
  return existsSync(path) ? statSync(path).mtimeMs : 0;
}

// npm writes node_modules/.package-lock.json on every install: older than the lockfile = stale.
const installed = mtime(join(root, 'node_modules', '.package-lock.json'));
if (installed === 0 || installed < mtime(join(root, 'package-lock.json')) || installed < mtime(join(root, 'package.json'))) {
  step('installing npm dependencies ...');
  run('npm', existsSync(join(root, 'package-lock.json')) ? ['ci', '--no-audit', '--no-fund'] : ['install', '--no-audit', '--no-fund']);
} else {
  step('npm dependencies up to date');
}

for (const tool of ['go', 'openssl']) {
  if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) {
    step(`${tool} is required (Go builds the local control plane; openssl makes its certificates)`);
    process.exit(1);
  }
}
step('control plane: building or reusing cached etcd / kube-apiserver / kube-controller-manager ...');
run('bash', [join(root, 'hack', 'build-control-plane.sh')]);
ensureMoto();
run('bash', [join(root, 'hack', 'net-tools.sh')]);
run('bash', [join(root, 'hack', 'install-dnsmasq.sh')]);
