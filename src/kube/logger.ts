import { pino, stdTimeFunctions, type Bindings, type Logger, type LevelWithSilent } from 'pino';

/** Paths pino blanks out wherever they appear in a log line: credentials never reach logs. */
export const REDACTED_PATHS = [
  'token',
  '*.token',
  'password',
  '*.password',
  'secretAccessKey',
  '*.secretAccessKey',
  'accessKeySecret',
  '*.accessKeySecret',
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
];

/**
 * JSON lines with ISO-8601 times. Child loggers add their own keys (controller, provider,
 * service, informer, subsystem); the base carries none, so no key ever appears twice.
 */
export function createLogger(level: LevelWithSilent = 'info', destination?: NodeJS.WritableStream): Logger {
  const options = { level, base: undefined, timestamp: stdTimeFunctions.isoTime, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } };
  return destination ? pino(options, destination) : pino(options);
}

/**
 * `parent.child(bindings)`, made on first use. A reconcile takes a child logger per Service and
 * per provider call but rarely logs; with the redaction paths, each pino child costs more than
 * the rest of a skipped reconcile (bench/README.md, footprint).
 */
export function lazyChild(parent: Logger, bindings: Bindings): Logger {
  let child: Logger | undefined;
  return new Proxy({} as Logger, {
    get(_target, property) {
      child ??= parent.child(bindings);
      const value: unknown = Reflect.get(child, property, child);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(child) : value;
    },
  });
}
