/** SDK errors -> ProviderError, at the provider's boundary. */
import { ProviderError } from '../provider.js';
import { AwsRetriesExhausted, classify, errorCode } from './guard.js';

const QUOTA = /^TooMany|^RulesPerSecurityGroupLimitExceeded$|^SecurityGroupLimitExceeded$/;
const PERMISSION = new Set(['AccessDenied', 'AccessDeniedException', 'UnauthorizedOperation', 'AuthFailure', 'InvalidClientTokenId', 'ExpiredToken', 'SignatureDoesNotMatch', 'UnrecognizedClient']);
const bounded = (s: string): string => (s.length > 300 ? `${s.slice(0, 300)}…` : s);

export function isNotFound(error: unknown): boolean {
  return ['LoadBalancerNotFound', 'TargetGroupNotFound', 'ListenerNotFound', 'InvalidGroup.NotFound', 'InvalidPermission.NotFound'].includes(errorCode(error));
}

export function toProviderError(error: unknown, what: string): ProviderError {
  if (error instanceof ProviderError) return error;
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof AwsRetriesExhausted) {
    return new ProviderError(bounded(`${what}: AWS kept refusing (${error.outcome}) after ${error.attempts} attempts: ${message}`), {
      retryable: true,
      retryAfterMs: error.outcome === 'throttled' ? 30_000 : undefined,
      cause: error,
    });
  }
  const code = errorCode(error);
  if (PERMISSION.has(code)) {
    return new ProviderError(bounded(`${what}: ${code}: the controller's IAM role lacks a permission (docs/providers/aws.md lists the policy): ${message}`), { retryable: true, retryAfterMs: 120_000, cause: error });
  }
  if (QUOTA.test(code)) {
    return new ProviderError(bounded(`${what}: ${code}: an AWS quota is exhausted (raise it in Service Quotas or delete unused resources): ${message}`), { retryable: true, retryAfterMs: 300_000, cause: error });
  }
  if (code === 'OperationNotPermitted') {
    return new ProviderError(bounded(`${what}: ${code}: ${message} (deletion protection? set deletion_protection.enabled=false in the aws-load-balancer-attributes annotation, or in the AWS console if the Service is already gone)`), {
      retryable: true,
      retryAfterMs: 300_000,
      cause: error,
    });
  }
  const kind = classify(error);
  return new ProviderError(bounded(`${what}: ${code === '' ? '' : `${code}: `}${message}`), { retryable: true, retryAfterMs: kind === 'client-error' ? 30_000 : undefined, cause: error });
}
