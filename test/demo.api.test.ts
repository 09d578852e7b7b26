/** `portico demo --once` as a user runs it: its own control plane, a filled-in EXTERNAL-IP, nothing left behind. */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

describe('portico demo', () => {
  it('prints the seed Services with nginx-lb given an address from the default pool, then cleans up', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'hack', 'demo.ts'), '--once'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code, output).toBe(0);
    const row = output.split('\n').find((line) => line.startsWith('nginx-lb '));
    expect(row, output).toMatch(/LoadBalancer\s+\S+\s+203\.0\.113\.\d+\s+80:\d+\/TCP\s+\d+s\s+Provisioned/);
    for (const name of ['nginx-service1', 'nginx-np', 'db', 'api-partner']) expect(output).toMatch(new RegExp(`^${name} `, 'm'));
    expect(output).toMatch(/EnsuredLoadBalancer\s+Ensured load balancer: 203\.0\.113\.\d+ \(assigned from pool default\)/);
    const dir = /\[demo\] kubeconfig: (\S+)\/kubeconfig/.exec(output)?.[1];
    expect(output).not.toContain('export KUBECONFIG=');
    expect(dir).toBeDefined();
    expect(existsSync(dir ?? '/nonexistent')).toBe(false);
    // The controller stops (and hands back its Lease) before the control plane does: a clean
    // run logs no warning or error, not even as it ends.
    expect(output).not.toMatch(/"level":(40|50|60)/);
  }, 120_000);
});
