/**
 * `portico controller` as its own process, the way the Deployment runs it (the image runs
 * `node <NODE_FLAGS> dist/src/cli.js`), and what /proc says about it: RSS and CPU time.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import ts from 'typescript';
import { IMAGE_ENV, NODE_FLAGS } from '../../hack/image.js';
import { round } from './util.js';

/** Compiles src/ to dist/ (gitignored) once, as the image build does. */
export function buildDist(root: string): void {
  const result = spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
  if (result.status !== 0) throw new Error(`npx tsc -p tsconfig.build.json failed (exit ${String(result.status ?? result.signal)})`);
}

export interface ControllerProcess {
  child: ChildProcess;
  pid: number;
  /** The leader-election identity it defaults to (hostname-pid), also in its user agent. */
  identity: string;
  /** Its user agent up to the version: `portico-controller/`; the identity follows in parentheses. */
  exited: Promise<number | null>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code. */
  stop(graceMs?: number): Promise<number | null>;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Whatever ends this process, no controller outlives it. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of live) child.kill('SIGKILL');
  });
}

/**
 * Spawns `<node> <the image's V8 flags> dist/src/cli.js controller <flags>`, as the image runs it
 * (`node`: the image's runtime, from hack/image.ts's ensureImageNode, or this process's); its
 * output goes to `logPath` (never parsed).
 */
export function spawnController(root: string, flags: readonly string[], logPath: string, node = process.execPath): ControllerProcess {
  return spawnNode(root, [...NODE_FLAGS, join(root, 'dist/src/cli.js'), 'controller', ...flags], logPath, false, node);
}

const TERMS_PROCESS = 'dist/bench/terms-process.js';

/**
 * Spawns support/terms-process.ts (the compiled controller, restarted in-process after each lost
 * term); stdout is piped for its events. Transpiled to dist/ first, so no loader runs in it.
 */
export function spawnTermsProcess(root: string, flags: readonly string[], logPath: string): ControllerProcess {
  const source = readFileSync(join(root, 'bench/support/terms-process.ts'), 'utf8');
  const { outputText } = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } });
  mkdirSync(join(root, 'dist/bench'), { recursive: true });
  writeFileSync(join(root, TERMS_PROCESS), outputText);
  return spawnNode(root, [...NODE_FLAGS, '--expose-gc', join(root, TERMS_PROCESS), ...flags], logPath, true, process.execPath);
}

function spawnNode(root: string, args: readonly string[], logPath: string, pipeStdout: boolean, node: string): ControllerProcess {
  installExitHook();
  const log = openSync(logPath, 'a');
  // The image's environment, as the image sets it.
  const env: NodeJS.ProcessEnv = { ...process.env, ...IMAGE_ENV };
  // The identity must default to hostname-pid, as the Deployment's would to the pod name.
  delete env['POD_NAME'];
  const child = spawn(node, args, { cwd: root, env, stdio: ['ignore', pipeStdout ? 'pipe' : log, log] });
  closeSync(log);
  if (child.pid === undefined) throw new Error('could not spawn the controller');
  const pid = child.pid;
  live.add(child);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      live.delete(child);
      resolve(code);
    });
  });
  return {
    child,
    pid,
    identity: `${hostname()}-${String(pid)}`,
    exited,
    stop: async (graceMs = 15_000) => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        const code = await exited;
        clearTimeout(timer);
        return code;
      }
      return exited;
    },
  };
}

/** Bytes from /proc/<pid>/status: current RSS (VmRSS) and its high-water mark (VmHWM). */
export function procMemory(pid: number): { rssBytes: number; hwmBytes: number } {
  const text = readFileSync(`/proc/${String(pid)}/status`, 'utf8');
  const kb = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(text)?.[1] ?? NaN) * 1024;
  return { rssBytes: kb('VmRSS'), hwmBytes: kb('VmHWM') };
}

let clockTicks: number | undefined;

/** The kernel's clock ticks per second, the unit of /proc's CPU times. */
function ticksPerSecond(): number {
  return (clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()));
}

/** User + system CPU seconds of a process so far, from /proc/<pid>/stat (utime, stime). */
export function procCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${String(pid)}/stat`, 'utf8');
  // The command name may contain spaces: fields are counted after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat(5); here indexes 11 and 12.
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond();
}

/** The pid of the process whose command line satisfies `match`, from /proc. */
export function findPid(match: (argv: readonly string[]) => boolean): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter(Boolean);
      if (match(argv)) return Number(entry);
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return undefined;
}

/** CPU seconds so far: of some processes, and of the machine's idle and steal time (/proc/stat). */
export interface CpuSample {
  processes: Record<string, number>;
  idleS: number;
  stealS: number;
}

export function sampleCpu(pids: Readonly<Record<string, number | undefined>>): CpuSample {
  const ticks = ticksPerSecond();
  // "cpu  user nice system idle iowait irq softirq steal ...", in clock ticks.
  const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  const processes: Record<string, number> = {};
  for (const [name, pid] of Object.entries(pids)) if (pid !== undefined) processes[name] = procCpuSeconds(pid);
  return { processes, idleS: ((fields[3] ?? 0) + (fields[4] ?? 0)) / ticks, stealS: (fields[7] ?? 0) / ticks };
}

/** What each process, and the machine's idle and steal time, used between two samples. */
export function cpuBetween(from: CpuSample, to: CpuSample): Record<string, number> {
  const used: Record<string, number> = {};
  for (const [name, seconds] of Object.entries(to.processes)) used[name] = round(seconds - (from.processes[name] ?? seconds), 2);
  return { ...used, idle: round(to.idleS - from.idleS, 2), steal: round(to.stealS - from.stealS, 2) };
}
