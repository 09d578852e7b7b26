import { pino, stdTimeFunctions, type Logger, type LevelWithSilent } from 'pino';

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
