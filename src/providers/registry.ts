/**
 * The one registry: provider class -> { flags, settings parser, factory }. Adding a provider
 * touches its own folder plus one line in PROVIDER_MODULES. No other file names a provider class.
 */
import { aliyunProviderModule } from './aliyun/module.js';
import { awsProviderModule } from './aws/module.js';
import { l2ProviderModule } from './metallb-like/module.js';
import type { ProviderClass, ProviderModule } from './provider.js';

export type { FlagValues, ProviderDeps, ProviderFlag, ProviderModule } from './provider.js';

export const PROVIDER_MODULES: readonly ProviderModule[] = [l2ProviderModule, awsProviderModule, aliyunProviderModule];

export function providerModule(providerClass: string, modules: readonly ProviderModule[] = PROVIDER_MODULES): ProviderModule | undefined {
  return modules.find((m) => m.providerClass === providerClass);
}

export function providerClasses(modules: readonly ProviderModule[] = PROVIDER_MODULES): ProviderClass[] {
  return modules.map((m) => m.providerClass);
}
