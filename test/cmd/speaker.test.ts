import { describe, expect, it } from 'vitest';
import { parseSpeakerFlags, SPEAKER_FLAGS, SPEAKER_USAGE } from '../../src/cmd/speaker.js';

describe('portico speaker flags', () => {
  it('has documented defaults: 10 s lease renewal, 600 ms probe timeout, node and namespace from the downward API', () => {
    expect(parseSpeakerFlags([], { NODE_NAME: 'n1', POD_NAMESPACE: 'lb' })).toMatchObject({
      node: 'n1',
      namespace: 'lb',
      renewIntervalMs: 10_000,
      leaseDurationMs: 30_000,
      probePort: 7947,
      probeIntervalMs: 100,
      probeTimeoutMs: 600,
      gratuitousRepeats: 3,
      gratuitousIntervalMs: 1_200,
      metricsAddr: ':7472',
    });
  });

  it('lets flags override the environment', () => {
    expect(parseSpeakerFlags(['--node-name=a', '--namespace=x'], { NODE_NAME: 'n1', POD_NAMESPACE: 'lb' })).toMatchObject({ node: 'a', namespace: 'x' });
  });

  it.each([
    [[], 'node-name'],
    [['--node-name=a', '--probe-timeout=150ms'], '--probe-timeout must be at least twice --probe-interval'],
    [['--node-name=a', '--lease-duration=15s'], '--lease-duration must be at least twice --lease-renew-interval'],
    [['--node-name=a', '--probe-port=70000'], '--probe-port=70000'],
    [['--node-name=a', '--gratuitous-interval=soon'], '--gratuitous-interval=soon'],
    [['--node-name=a', '--log-level=loud'], '--log-level=loud'],
  ])('refuses %j naming the problem', (args, message) => {
    expect(() => parseSpeakerFlags(args, {})).toThrow(message);
  });

  it('describes every flag in --help', () => {
    for (const name of Object.keys(SPEAKER_FLAGS)) expect(SPEAKER_USAGE).toContain(`--${name}`);
  });
});
