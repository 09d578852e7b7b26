/**
 * Soak of the AF_PACKET sockets (koffi) in a network namespace: thousands of ARP and NS frames
 * over a veth pair, sockets opened and closed again and again, in a real child process. Every
 * frame must arrive, and the process must survive and end with no socket left open.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../../../src/paths.js';
import { netUnavailableReason, sh } from './support/lan.js';

const run = promisify(execFile);
const reason = netUnavailableReason();
if (reason) process.stderr.write(`\n!!! SKIPPED frame-socket.net.test.ts: ${reason}\n\n`);

describe.skipIf(reason !== undefined)('AF_PACKET frame sockets under load', () => {
  const netns = `fsk${randomBytes(2).toString('hex')}`;
  beforeAll(async () => {
    await sh(['ip', 'netns', 'add', netns]);
    await sh(['ip', '-n', netns, 'link', 'add', 'soak-a', 'type', 'veth', 'peer', 'name', 'soak-b']);
    // No IPv6 link-local addresses: their duplicate address detection would add stray NS.
    for (const link of ['soak-a', 'soak-b']) await sh(['ip', '-n', netns, 'link', 'set', link, 'addrgenmode', 'none']);
    for (const link of ['soak-a', 'soak-b', 'lo']) await sh(['ip', '-n', netns, 'link', 'set', link, 'up']);
  });
  afterAll(async () => {
    await sh(['ip', 'netns', 'del', netns], { allowFail: true });
  });

  it('delivers every frame across 100 open/close cycles', async () => {
    const script = join(packageRoot(import.meta.url), 'test/providers/metallb-like/speaker/support/soak.ts');
    const { stdout } = await run('ip', ['netns', 'exec', netns, process.execPath, '--import', 'tsx', script, 'soak-a', 'soak-b', '100', '100'], { timeout: 50_000 });
    const result = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
    // Printed on failure, so a miss can be told apart from a crash.
    process.stderr.write(`soak: ${JSON.stringify(result)}\n`);
    expect(result).toMatchObject({ cycles: 100, sent: 20_000, arpReceived: 10_000, nsReceived: 10_000, otherReceived: 0, openAfter: 0 });
    expect(result['stats']).toMatchObject({ sendErrors: 0, receiveErrors: 0 });
  });
});
