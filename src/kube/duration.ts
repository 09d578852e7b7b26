/** Durations as flags and CRD fields write them: `500ms`, `15s`, `1.5s`, `10m`, `1h`. */

const UNITS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const;

/** Milliseconds, or undefined for anything else. With `allowZero`, a bare `0` means zero (off). */
export function parseDuration(value: string, options: { allowZero?: boolean } = {}): number | undefined {
  const text = value.trim();
  if (options.allowZero === true && text === '0') return 0;
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text);
  if (!match?.[1] || !match[2]) return undefined;
  return Math.round(Number(match[1]) * UNITS[match[2] as keyof typeof UNITS]);
}
