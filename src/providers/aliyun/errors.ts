/**
 * SLB error classification, at the provider's own boundary. The retry set is the one
 * terraform-provider-alicloud and cloud-provider-alibaba-cloud retry: throttling, busy and
 * "configuring" states, ServiceUnavailable and any 5xx.
 */

/** An error answered by the SLB API (or the transport), normalised from the SDK's error classes. */
export class SlbApiError extends Error {
  readonly code: string;
  readonly statusCode: number | undefined;
  readonly requestId: string | undefined;
  /** From `x-acs-retry-after` on a throttled answer. */
  readonly retryAfterMs: number | undefined;

  constructor(message: string, fields: { code: string; statusCode?: number; requestId?: string; retryAfterMs?: number; cause?: unknown }) {
    super(message, { cause: fields.cause });
    this.name = 'SlbApiError';
    this.code = fields.code;
    this.statusCode = fields.statusCode;
    this.requestId = fields.requestId;
    this.retryAfterMs = fields.retryAfterMs;
  }
}

export const RETRYABLE_CODES: readonly string[] = [
  'SystemBusy',
  'OperationBusy',
  'ServiceIsConfiguring',
  'ServiceIsStopping',
  'VServerGroupProcessing',
  'BackendServer.configuring',
  'ServiceUnavailable',
];

/** The ClientToken is being used by a request still in flight (or just finished). */
export const TOKEN_CONFLICT = 'LX_REQUEST_TOKEN_CONFLICT';
/** The ClientToken was used before with different parameters. */
export const IDEMPOTENT_MISMATCH = 'IdempotentParameterMismatch';

export type ErrorClass = 'throttled' | 'retryable' | 'token-conflict' | 'not-found' | 'terminal';

const TRANSPORT_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ReadTimeout', 'ConnectTimeout', 'RequestTimeout', 'Timeout']);

export function classify(error: SlbApiError): ErrorClass {
  const code = error.code;
  if (code.startsWith('Throttling')) return 'throttled';
  if (RETRYABLE_CODES.includes(code)) return 'retryable';
  if (error.statusCode !== undefined && error.statusCode >= 500) return 'retryable';
  if (TRANSPORT_CODES.has(code) || /Timeout/i.test(code)) return 'retryable';
  if (code === TOKEN_CONFLICT || code === IDEMPOTENT_MISMATCH) return 'token-conflict';
  if (/NotExist|NotFound/i.test(code)) return 'not-found';
  return 'terminal';
}

/** Turns whatever the SDK (or the HTTP layer) threw into an SlbApiError. */
export function toSlbApiError(error: unknown): SlbApiError {
  if (error instanceof SlbApiError) return error;
  if (typeof error === 'object' && error !== null) {
    const e = error as { code?: unknown; statusCode?: unknown; requestId?: unknown; retryAfter?: unknown; message?: unknown; name?: unknown; data?: { Code?: unknown } };
    const message = typeof e.message === 'string' ? e.message : JSON.stringify(error);
    let code = typeof e.code === 'string' && e.code !== '' && e.code !== 'undefined' ? e.code : undefined;
    code ??= typeof e.data?.Code === 'string' ? e.data.Code : undefined;
    // The SDK's HTTP layer (httpx) reports timeouts by name and message, not by code.
    if (code === undefined && typeof e.name === 'string' && /Timeout/i.test(e.name)) code = e.name;
    if (code === undefined && /timeout/i.test(message)) code = 'Timeout';
    const retryAfterMs = typeof e.retryAfter === 'number' && Number.isFinite(e.retryAfter) && e.retryAfter > 0 ? e.retryAfter : undefined;
    return new SlbApiError(message.slice(0, 500), {
      code: code ?? 'Unknown',
      ...(typeof e.statusCode === 'number' ? { statusCode: e.statusCode } : {}),
      ...(typeof e.requestId === 'string' && e.requestId !== 'undefined' ? { requestId: e.requestId } : {}),
      ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
      cause: error,
    });
  }
  return new SlbApiError(String(error), { code: 'Unknown', cause: error });
}
