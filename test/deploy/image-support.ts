/**
 * The image `npm run image` builds, loaded for tests: built (or reused from the cache), its
 * archive checked (layout, digests), loaded by skopeo into a vfs container store exactly as
 * `podman load` does, and run from that store's root filesystem, mounted read-only, as the
 * image's user (unshare + chroot: no container engine needed).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImage, ensureImageTools, IMAGE_NAME, ImageToolsUnavailable } from '../../hack/image.js';

const log = (line: string): void => {
  process.stderr.write(`[image] ${line}\n`);
};

/** Why image tests cannot run here (said loudly once), or undefined. */
export const imageUnavailable: string | undefined = (() => {
  try {
    ensureImageTools(log);
    return undefined;
  } catch (error) {
    if (!(error instanceof ImageToolsUnavailable)) throw error;
    process.stderr.write(`\n${'!'.repeat(78)}\n!! SKIPPED: container image tests. ${error.message}\n!! Run on Debian as root (CI does) to check the image.\n${'!'.repeat(78)}\n\n`);
    return error.message;
  }
})();

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

export interface ImageConfig {
  config: { User?: string; Entrypoint?: string[]; Env?: string[]; WorkingDir?: string };
  rootfs: { diff_ids: string[] };
}

export interface LoadedImage {
  archive: string;
  index: { manifests: Descriptor[] };
  manifest: { config: Descriptor; layers: Descriptor[] };
  config: ImageConfig;
  /** The container's root filesystem as the container store unpacked it. */
  rootfs: string;
  /** Blob digests that did not match their content. */
  badDigests: string[];
  /** What skopeo (podman's loader) said when it failed; empty on success. */
  loadError: string;
  /** Names the store gave the image. */
  names: string[];
  cleanup(): void;
}

export function loadImage(): LoadedImage {
  const { archive } = buildImage(log);
  const tmp = mkdtempSync(join(tmpdir(), 'portico-image-'));
  const layout = join(tmp, 'layout');
  mkdirSync(layout);
  const untar = spawnSync('tar', ['-xf', archive, '-C', layout], { encoding: 'utf8' });
  if (untar.status !== 0) throw new Error(`not a tar: ${untar.stderr}`);
  const badDigests: string[] = [];
  const blob = (digest: string): Buffer => {
    const data = readFileSync(join(layout, 'blobs', ...digest.split(':')));
    if (`sha256:${createHash('sha256').update(data).digest('hex')}` !== digest) badDigests.push(digest);
    return data;
  };
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
  const manifest = JSON.parse(blob(index.manifests[0]?.digest ?? '').toString()) as { config: Descriptor; layers: Descriptor[] };
  const config = JSON.parse(blob(manifest.config.digest).toString()) as ImageConfig;
  for (const layer of manifest.layers) blob(layer.digest);

  const store = join(tmp, 'store');
  const load = spawnSync('skopeo', ['copy', '--quiet', `oci-archive:${archive}:${IMAGE_NAME}`, `containers-storage:[vfs@${store}+${join(tmp, 'run')}]${IMAGE_NAME}`], { encoding: 'utf8' });
  let names: string[] = [];
  let rootfs = '';
  if (load.status === 0) {
    const [image] = JSON.parse(readFileSync(join(store, 'vfs-images', 'images.json'), 'utf8')) as { names: string[]; layer: string }[];
    names = image?.names ?? [];
    // vfs keeps each layer as a full copy: the top one is the container's root filesystem.
    rootfs = join(store, 'vfs', 'dir', image?.layer ?? '');
  }
  return { archive, index, manifest, config, rootfs, badDigests, loadError: load.status === 0 ? '' : load.stderr, names, cleanup: () => rmSync(tmp, { recursive: true, force: true }) };
}

export interface RunOptions {
  /** Host directory -> directory that exists in the image (e.g. /tmp), bind-mounted over it. */
  binds?: readonly (readonly [string, string])[];
}

/** The command line: a private mount namespace, the root bound read-only, the image's env and user. */
function commandLine(image: LoadedImage, args: readonly string[], options: RunOptions): string[] {
  const binds = (options.binds ?? []).map(([host, inside]) => `mount --bind '${host}' "$0${inside}"`).join(' && ');
  const script = `mount --bind "$0" "$0" && mount -o remount,bind,ro "$0"${binds ? ` && ${binds}` : ''} && exec "$@"`;
  const { Env = [], User = '', Entrypoint = [] } = image.config.config;
  return ['--mount', '--fork', '--kill-child', 'sh', '-c', script, image.rootfs, 'env', '-i', ...Env, '/usr/sbin/chroot', `--userspec=${User}`, image.rootfs, ...Entrypoint, ...args];
}

export function runImage(image: LoadedImage, args: readonly string[], options: RunOptions = {}): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync('unshare', commandLine(image, args, options), { encoding: 'utf8', timeout: 60_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Starts the image's entrypoint in the background; kill the returned process to stop it. */
export function startImage(image: LoadedImage, args: readonly string[], options: RunOptions = {}): ChildProcess {
  return spawn('unshare', commandLine(image, args, options), { stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * Stops what startImage started: SIGTERM to the portico process itself (unshare ignores
 * SIGTERM while it waits), SIGKILL after `graceMs`; resolves with the exit code of the whole.
 */
export async function stopImage(proc: ChildProcess, graceMs = 10_000): Promise<number | null> {
  if (proc.exitCode !== null || proc.pid === undefined) return proc.exitCode;
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${String(proc.pid)}/task/${String(proc.pid)}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    // Already gone.
  }
  for (const child of children) process.kill(child, 'SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
  const code = await exited;
  clearTimeout(timer);
  return code;
}
