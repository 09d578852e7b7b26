/**
 * Starts moto's server (installed by hack/moto.mjs) on a free loopback port, for the AWS
 * provider's tests, benchmark and demo. `stop()` kills it; a reaper kills it too if this process
 * dies first, so a crashed run leaves no server behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../src/paths.js';
import { freePorts } from './control-plane.js';

const repoRoot = packageRoot(import.meta.url);

export interface MotoServer {
  /** http://127.0.0.1:PORT */
  endpoint: string;
  /** Drops all state (moto's reset API), so each suite starts from nothing. */
  reset(): Promise<void>;
  stop(): Promise<void>;
}

/** Where hack/moto.mjs installed moto_server. */
export function motoServerBinary(): string {
  const candidates = [
    process.env.PORTICO_MOTO_VENV,
    process.env.PORTICO_CACHE_DIR === undefined ? undefined : join(process.env.PORTICO_CACHE_DIR, 'moto-venv'),
    join(repoRoot, '.cache', 'moto-venv'),
  ].filter((c): c is string => c !== undefined);
  for (const venv of candidates) {
    const binary = join(venv, 'bin', 'moto_server');
    if (existsSync(binary)) return binary;
  }
  throw new Error(`moto_server not found in ${candidates.join(' or ')}: run node hack/bootstrap.mjs (or node hack/moto.mjs)`);
}

export async function startMoto(options: { readyTimeoutMs?: number } = {}): Promise<MotoServer> {
  const binary = motoServerBinary();
  const [port] = await freePorts(1);
  if (port === undefined) throw new Error('no free port');
  const endpoint = `http://127.0.0.1:${port}`;
  let output = '';
  const child = spawn(binary, ['-H', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PYTHONUNBUFFERED: '1' } });
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-4_000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.once('error', (error) => keep(Buffer.from(`failed to start ${binary}: ${error.message}\n`)));
  const reaper = startReaper(child);
  const stop = async (): Promise<void> => {
    await terminate(child);
    reaper.kill('SIGKILL');
  };
  const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000);
  for (;;) {
    if (child.exitCode !== null) throw new Error(`moto_server exited (${child.exitCode}): ${output}`);
    try {
      const res = await fetch(`${endpoint}/moto-api/reset`, { method: 'POST' });
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`moto_server did not answer on ${endpoint}: ${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    endpoint,
    reset: async () => {
      const res = await fetch(`${endpoint}/moto-api/reset`, { method: 'POST' });
      if (!res.ok) throw new Error(`moto reset: HTTP ${res.status}`);
    },
    stop,
  };
}

async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

/** A detached shell that kills moto once our process is gone (a crashed run). */
function startReaper(child: ChildProcess): ChildProcess {
  const script = `while kill -0 ${String(process.pid)} 2>/dev/null; do sleep 1; done; kill -TERM ${String(child.pid)} 2>/dev/null; sleep 2; kill -KILL ${String(child.pid)} 2>/dev/null`;
  const reaper = spawn('bash', ['-c', script], { stdio: 'ignore', detached: true });
  reaper.unref();
  return reaper;
}
