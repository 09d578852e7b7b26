#!/usr/bin/env node
// Installs moto (the AWS emulator the AWS provider's tests, benchmark and demo run against) into a
// project-local virtualenv, once: `<cache>/moto-venv`. Plain Node, called by hack/bootstrap.mjs.
// Idempotent: a marker file records the pinned version; a matching marker means nothing to do.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const MOTO_VERSION = '5.2.5';
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const step = (msg) => process.stderr.write(`[bootstrap] ${msg}\n`);

export function motoVenv() {
  return process.env.PORTICO_MOTO_VENV ?? join(process.env.PORTICO_CACHE_DIR ?? join(root, '.cache'), 'moto-venv');
}

export function ensureMoto() {
  const venv = motoVenv();
  const marker = join(venv, '.portico-moto-version');
  if (existsSync(marker) && readFileSync(marker, 'utf8').trim() === MOTO_VERSION && existsSync(join(venv, 'bin', 'moto_server'))) {
    step(`moto ${MOTO_VERSION} up to date (${venv})`);
    return;
  }
  const python = ['python3', 'python'].find((p) => spawnSync(p, ['--version']).status === 0);
  if (python === undefined) {
    step('python3 (with the venv module) is required for moto, the AWS emulator the AWS tests use');
    process.exit(1);
  }
  step(`moto: creating a virtualenv in ${venv} and installing moto[server]==${MOTO_VERSION} from PyPI (about a minute) ...`);
  rmSync(venv, { recursive: true, force: true });
  for (const [cmd, args] of [
    [python, ['-m', 'venv', venv]],
    [join(venv, 'bin', 'pip'), ['install', '--disable-pip-version-check', '--progress-bar', 'off', `moto[server]==${MOTO_VERSION}`]],
  ]) {
    const result = spawnSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    if (result.status !== 0) {
      step(`${cmd} ${args.join(' ')} failed (exit ${result.status ?? result.signal}); on Debian: apt-get install python3-venv`);
      process.exit(result.status ?? 1);
    }
  }
  writeFileSync(marker, `${MOTO_VERSION}\n`);
  step('moto installed');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) ensureMoto();
