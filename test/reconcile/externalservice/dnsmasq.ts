/** A real dnsmasq on loopback whose records a test changes (hosts files in --hostsdir). */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts } from '../../../hack/control-plane.js';

export const DNSMASQ = ['/usr/sbin/dnsmasq', '/usr/bin/dnsmasq'].find((p) => existsSync(p));

/** Resolves once dnsmasq logs that it started (its sockets are bound by then), or rejects with its output. */
function whenStarted(child: ChildProcess, output: () => string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error(`dnsmasq did not start within ${String(timeoutMs)} ms: ${output()}`)), timeoutMs);
    const onData = (): void => {
      if (/: started, version/.test(output())) finish();
    };
    const onExit = (): void => finish(new Error(`dnsmasq exited: ${output()}`));
    const finish = (error?: Error): void => {
      clearTimeout(timer);
      child.stderr?.off('data', onData);
      child.off('exit', onExit);
      if (error) reject(error);
      else resolve();
    };
    child.stderr?.on('data', onData);
    child.once('exit', onExit);
    onData();
  });
}

export interface Dnsmasq {
  server: string;
  /** Replaces every record: name -> addresses. New names appear at once (inotify); removals need reload(). */
  setRecords(records: Record<string, string[]>): Promise<void>;
  /** SIGHUP: re-reads the hosts files, dropping removed records. */
  reload(): void;
  stop(): Promise<void>;
}

export async function startDnsmasq(options: { ttlSeconds: number; localDomains: string[] }): Promise<Dnsmasq> {
  if (!DNSMASQ) throw new Error('dnsmasq is not installed (hack/install-dnsmasq.sh)');
  const dir = await mkdtemp(join(tmpdir(), 'portico-ext-dns-'));
  await chmod(dir, 0o755);
  // The port is checked free before dnsmasq binds it; should another process take it in
  // between, dnsmasq says so and another port is tried.
  let started: { child: ChildProcess; port: number } | undefined;
  for (let attempt = 1; started === undefined; attempt++) {
    const [port = 0] = await freePorts(1, { udp: true });
    const child: ChildProcess = spawn(
      DNSMASQ,
      [
        '--keep-in-foreground',
        '--no-resolv',
        '--no-hosts',
        '--no-poll',
        '--pid-file=',
        '--bind-interfaces',
        '--listen-address=127.0.0.1',
        `--port=${String(port)}`,
        `--hostsdir=${dir}`,
        `--local-ttl=${String(options.ttlSeconds)}`,
        ...options.localDomains.map((d) => `--local=/${d}/`),
        '--log-facility=-',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    try {
      await whenStarted(child, () => stderr, 10_000);
      started = { child, port };
    } catch (error) {
      child.kill('SIGKILL');
      if (attempt >= 5 || !stderr.includes('Address already in use')) {
        await rm(dir, { recursive: true, force: true });
        throw error;
      }
    }
  }
  const { child, port } = started;
  let generation = 0;
  return {
    server: `127.0.0.1:${String(port)}`,
    async setRecords(records) {
      // A fresh file name each time, so inotify reports a new file; old files are removed (reload drops them).
      const file = join(dir, `hosts-${String(++generation)}`);
      const text = Object.entries(records).flatMap(([name, addresses]) => addresses.map((a) => `${a} ${name}\n`)).join('');
      await writeFile(file, text, { mode: 0o644 });
      for (let g = 1; g < generation; g++) await rm(join(dir, `hosts-${String(g)}`), { force: true });
    },
    reload() {
      child.kill('SIGHUP');
    },
    async stop() {
      child.kill('SIGTERM');
      await rm(dir, { recursive: true, force: true });
    },
  };
}
