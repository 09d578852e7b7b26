/** A real dnsmasq on loopback whose records a test changes (hosts files in --hostsdir). */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const DNSMASQ = ['/usr/sbin/dnsmasq', '/usr/bin/dnsmasq'].find((p) => existsSync(p));

async function freeUdpPort(): Promise<number> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
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
  const port = await freeUdpPort();
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
  await new Promise((resolve) => setTimeout(resolve, 300));
  if (child.exitCode !== null) throw new Error(`dnsmasq exited: ${stderr}`);
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
