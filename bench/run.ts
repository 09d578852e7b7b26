/**
 * Benchmark runner: `tsx bench/run.ts <name> [--flags]` runs the benchmark in `bench/<name>.ts`.
 *
 * A benchmark module exports `description` (one line) and `run(args)`. An unknown or missing
 * name prints the list of benchmarks and exits non-zero. Benchmarks measure and report; they
 * never assert a timing.
 */
import { readdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from './support/util.js';

export interface Benchmark {
  description: string;
  run(args: string[]): Promise<void>;
}

const benchDir = dirname(fileURLToPath(import.meta.url));
const NAME = /^[a-z0-9][a-z0-9-]*$/;

/** Every `bench/<name>.ts` except this runner; helpers live under bench/support/. */
async function benchmarkNames(): Promise<string[]> {
  const files = await readdir(benchDir);
  return files
    .filter((f) => f.endsWith('.ts') && f !== 'run.ts')
    .map((f) => f.slice(0, -'.ts'.length))
    .filter((name) => NAME.test(name))
    .sort();
}

function isBenchmark(module: unknown): module is Benchmark {
  if (typeof module !== 'object' || module === null) return false;
  const m = module as Record<string, unknown>;
  return typeof m['run'] === 'function' && typeof m['description'] === 'string';
}

async function load(name: string): Promise<Benchmark> {
  const module: unknown = await import(`./${name}.ts`);
  if (!isBenchmark(module)) throw new Error(`bench/${name}.ts must export \`description\` and \`run(args)\``);
  return module;
}

async function printList(out: NodeJS.WritableStream): Promise<void> {
  out.write('usage: npm run bench -- <name> [--flags]\n\nbenchmarks:\n');
  for (const name of await benchmarkNames()) {
    const description = await load(name).then((b) => b.description, (error: unknown) => `(cannot load: ${(error as Error).message})`);
    out.write(`  ${name.padEnd(16)} ${description}\n`);
  }
}

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'list') {
    await printList(name === undefined ? process.stderr : process.stdout);
    return name === undefined ? 2 : 0;
  }
  const names = await benchmarkNames();
  if (!NAME.test(name) || !names.includes(name)) {
    process.stderr.write(`unknown benchmark: ${name}\n\n`);
    await printList(process.stderr);
    return 2;
  }
  const benchmark = await load(name);
  await benchmark.run(args);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const usage = error instanceof UsageError || (error instanceof Error && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS'));
    process.stderr.write(`${usage ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = usage ? 2 : 1;
  },
);
