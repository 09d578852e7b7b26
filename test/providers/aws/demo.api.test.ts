/** `npm run demo -- --provider=aws --once` as a user runs it: moto, an NLB's DNS name as EXTERNAL-IP, nothing left behind. */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../../', import.meta.url));

describe('portico demo --provider=aws', () => {
  it('prints nginx-lb with the NLB DNS name and the Events, then cleans up', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'hack', 'demo.ts'), '--provider=aws', '--once'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code, output).toBe(0);
    const row = output.split('\n').find((line) => line.startsWith('nginx-lb '));
    expect(row, output).toMatch(/LoadBalancer\s+\S+\s+k8s-default-nginxlb-[0-9a-f]{10}-\d+\.us-east-1\.elb\.amazonaws\.com\s+80:\d+\/TCP\s+\d+s\s+Provisioned/);
    expect(output).toMatch(/EnsuredLoadBalancer\s+Ensured load balancer: k8s-\S+ \(.*created NLB k8s-default-nginxlb-/);
    const endpoint = /moto \(AWS emulator\) on (\S+)/.exec(output)?.[1];
    expect(endpoint).toBeDefined();
    // moto was stopped with the demo.
    await expect(fetch(`${endpoint ?? ''}/moto-api/`)).rejects.toThrow();
    // The controller stops before moto and the control plane do: no warning or error at the end.
    expect(output).not.toMatch(/"level":(40|50|60)/);
  }, 120_000);
});
