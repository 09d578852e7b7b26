/** A real dnsmasq on loopback whose records a test changes (hosts files in --hostsdir). */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const DNSMASQ = ['/usr/sbin/dnsmasq', '/usr/bin/dnsmasq'].find((p) => existsSync(p));

/** Binds `port` on loopback for `kind` and lets go; false when something holds it. */
async function canBind(kind: 'tcp' | 'udp', port: number): Promise<boolean> {
  if (kind === 'udp') {
    const socket = createSocket('udp4');
    const bound = await new Promise<boolean>((resolve) => {
      socket.once('error', () => resolve(false));
      socket.bind(port, '127.0.0.1', () => resolve(true));
    });
    await new Promise<void>((resolve) => socket.close(() => resolve()));
    return bound;
  }
  const server = createServer();
  const bound = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => resolve(true));
  });
  if (bound) await new Promise((resolve) => server.close(resolve));
  return bound;
}

/**
 * A port free for both UDP and TCP (dnsmasq binds both), picked below the kernel's ephemeral
 * range (32768-60999 by default): a port the kernel handed out for a moment could meanwhile be
 * any test's outgoing connection, which is how dnsmasq once failed with "Address already in use".
 */
async function freeDnsPort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = 20_000 + randomInt(12_000);
    if ((await canBind('udp', port)) && (await canBind('tcp', port))) return port;
  }
  throw new Error('no free port for dnsmasq in 20000-31999');
}

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
    const port = await freeDnsPort();
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
