import { describe, expect, it } from 'vitest';
import { awsProviderModule, parseAwsSettings } from '../../../src/providers/aws/module.js';
import { PROVIDER_MODULES } from '../../../src/providers/registry.js';

describe('AWS provider settings', () => {
  it('is registered, with every flag prefixed aws-', () => {
    expect(PROVIDER_MODULES).toContain(awsProviderModule);
    expect(Object.keys(awsProviderModule.flags).every((f) => f.startsWith('aws-'))).toBe(true);
  });

  it('parses flags into settings with documented defaults', () => {
    expect(parseAwsSettings({ 'aws-cluster-name': 'prod', 'aws-region': 'eu-west-1', 'aws-gc-interval': '1h', 'aws-gc-dry-run': true })).toEqual({
      settings: { clusterName: 'prod', region: 'eu-west-1', endpoint: undefined, inventoryTtlMs: 60_000, deepVerifyIntervalMs: 3_600_000, gcIntervalMs: 3_600_000, gcDryRun: true, externalManagedTags: [] },
    });
  });

  it('reports every bad flag at once, each by name', () => {
    const result = parseAwsSettings({ 'aws-endpoint': 'localhost:5000', 'aws-deep-verify-interval': 'soon' });
    expect(result).toEqual({
      problems: [expect.stringMatching(/^--aws-cluster-name: required/), expect.stringMatching(/^--aws-endpoint=localhost:5000/), expect.stringMatching(/^--aws-deep-verify-interval=soon/)] as unknown,
    });
  });
});
