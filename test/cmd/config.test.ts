import { describe, expect, it } from 'vitest';
import { ConfigError, parseControllerFlags, parseDuration, parseListenAddress } from '../../src/cmd/config.js';

describe('parseControllerFlags', () => {
  it('has production defaults', () => {
    const config = parseControllerFlags([], { POD_NAME: 'portico-abc' });
    expect(config).toMatchObject({
      leaderElect: false,
      leaseNamespace: 'portico-system',
      leaseName: 'portico-controller',
      identity: 'portico-abc',
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
      metricsAddr: ':8080',
      healthAddr: ':8081',
      providers: ['portico.dev/l2'],
      defaultClass: undefined,
      workers: 4,
      resyncPeriodMs: 600_000,
      idleCompactionMs: 2_000,
    });
  });

  it('turns idle compaction off with 0', () => {
    expect(parseControllerFlags(['--idle-compaction=0'], {}).idleCompactionMs).toBe(0);
    expect(parseControllerFlags(['--idle-compaction=500ms'], {}).idleCompactionMs).toBe(500);
  });

  it.each([
    [['--workers=0'], '--workers=0'],
    [['--workers=1.5'], '--workers=1.5'],
    [['--resync-period=10'], '--resync-period=10'],
    [['--idle-compaction=soon'], '--idle-compaction=soon'],
    [['--providers=portico.dev/gce'], 'unknown provider portico.dev/gce'],
    [['--default-class=portico.dev/aws-nlb'], '--default-class=portico.dev/aws-nlb: must be one of the enabled --providers'],
    [['--log-level=loud'], '--log-level=loud'],
    [['--leader-elect', '--leader-elect-renew-deadline=20s'], '--leader-elect-lease-duration > --leader-elect-renew-deadline'],
    [['--leader-elect', '--leader-elect-renew-deadline=2s'], '1.2 x --leader-elect-retry-period'],
    [['--leader-elect', '--leader-elect-lease-duration=15500ms'], 'must be whole seconds'],
    [['--metrics-addr=8080'], '--metrics-addr: listen address 8080'],
    [['--health-addr=:99999'], '--health-addr'],
  ])('rejects %j naming the flag', (args, message) => {
    expect(() => parseControllerFlags(args, {})).toThrow(ConfigError);
    expect(() => parseControllerFlags(args, {})).toThrow(message);
  });

  it('reports every bad flag at once', () => {
    expect(() => parseControllerFlags(['--workers=0', '--log-level=loud'], {})).toThrow(/--workers=0[\s\S]*--log-level=loud/);
  });

  it('rejects unknown flags', () => {
    expect(() => parseControllerFlags(['--wokers=3'], {})).toThrow(/wokers/);
  });
});

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['15s', 15_000],
    ['1.5s', 1_500],
    ['10m', 600_000],
    ['1h', 3_600_000],
    ['15', undefined],
    ['s', undefined],
    ['-1s', undefined],
    ['1d', undefined],
  ])('%s -> %s', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });
});

describe('parseListenAddress', () => {
  it.each([
    [':8080', { host: undefined, port: 8080 }],
    ['127.0.0.1:9000', { host: '127.0.0.1', port: 9000 }],
    ['[::1]:9000', { host: '::1', port: 9000 }],
    ['0', undefined],
  ])('%s', (addr, want) => {
    expect(parseListenAddress(addr)).toEqual(want);
  });

  it.each(['8080', 'localhost', ':99999'])('rejects %s', (addr) => {
    expect(() => parseListenAddress(addr)).toThrow(ConfigError);
  });
});

describe('portico controller on a busy port', () => {
  it('names the flag instead of printing a stack', async () => {
    const { createServer } = await import('node:net');
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const address = busy.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    const { startController } = await import('../../src/cmd/controller.js');
    const { mkdtemp, writeFile } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const kubeconfig = `${await mkdtemp(`${tmpdir()}/portico-kc-`)}/kubeconfig`;
    // Never contacted: the busy port stops it first.
    await writeFile(kubeconfig, 'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:9"}}]\nusers: [{name: u, user: {token: x}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n');
    const config = parseControllerFlags([`--metrics-addr=127.0.0.1:${String(port)}`, '--health-addr=0', `--kubeconfig=${kubeconfig}`], {});
    try {
      await expect(startController(config, new AbortController().signal)).rejects.toThrow(`--metrics-addr=127.0.0.1:${String(port)}: cannot listen (address already in use)`);
    } finally {
      busy.close();
    }
  });
});
