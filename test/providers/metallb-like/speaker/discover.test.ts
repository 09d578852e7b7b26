import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { discoverInterfaces } from '../../../../src/providers/metallb-like/speaker/frame-socket.js';

// A /sys/class/net look-alike: flags as the kernel writes them (hex), type 1 = Ethernet.
const UP_BROADCAST = '0x1003';
const INTERFACES: Record<string, { flags: string; type?: string; operstate?: string; master?: boolean }> = {
  eth0: { flags: UP_BROADCAST },
  eth1: { flags: '0x1002' }, // down
  lo: { flags: '0x9', type: '772' },
  bond0: { flags: UP_BROADCAST },
  ens4: { flags: UP_BROADCAST, master: true }, // enslaved to bond0
  noarp0: { flags: '0x1083' }, // IFF_NOARP
  wg0: { flags: '0x91', type: '65534' }, // point-to-point tunnel
  eth2: { flags: UP_BROADCAST, operstate: 'lowerlayerdown' },
};

describe('discoverInterfaces', () => {
  let sysfs: string;
  beforeAll(async () => {
    sysfs = await mkdtemp(join(tmpdir(), 'portico-sysfs-'));
    let index = 1;
    for (const [name, spec] of Object.entries(INTERFACES)) {
      const dir = join(sysfs, name);
      await mkdir(dir);
      await writeFile(join(dir, 'flags'), `${spec.flags}\n`);
      await writeFile(join(dir, 'type'), `${spec.type ?? '1'}\n`);
      await writeFile(join(dir, 'operstate'), `${spec.operstate ?? 'up'}\n`);
      await writeFile(join(dir, 'ifindex'), `${index}\n`);
      await writeFile(join(dir, 'address'), `02:00:00:00:00:${String(index++).padStart(2, '0')}\n`);
      if (spec.master) await symlink(join(sysfs, 'bond0'), join(dir, 'master'));
    }
  });
  afterAll(async () => {
    await rm(sysfs, { recursive: true, force: true });
  });

  it('keeps up, Ethernet, broadcast, ARP-enabled, unenslaved interfaces', async () => {
    expect((await discoverInterfaces(undefined, sysfs)).map((i) => i.name)).toEqual(['bond0', 'eth0']);
  });

  it('restricts to the pool interfaces, still skipping unsuitable ones', async () => {
    expect(await discoverInterfaces(['eth0', 'eth1', 'ens4'], sysfs)).toEqual([{ name: 'eth0', ifindex: 1, mac: '02:00:00:00:00:01' }]);
  });

  it('finds nothing (rather than failing) without sysfs', async () => {
    expect(await discoverInterfaces(undefined, join(sysfs, 'missing'))).toEqual([]);
  });
});
