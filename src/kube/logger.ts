import { pino, type Logger, type LevelWithSilent } from 'pino';

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

export function createLogger(level: LevelWithSilent = 'info', destination?: NodeJS.WritableStream): Logger {
  const options = { level, base: { component: 'portico' }, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } };
  return destination ? pino(options, destination) : pino(options);
}
