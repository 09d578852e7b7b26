/**
 * The container image `npm run image` builds (hack/image.ts), checked from the OCI archive alone:
 * its layout and digests; loaded by skopeo into a container store exactly as `podman load` does;
 * its name, size and user; and its entrypoint running `portico` from that root filesystem,
 * read-only, as that user. Skipped loudly where the image tools cannot be installed (needs root
 * and apt); on Debian CI machines they can, so this runs. The first run builds the image (about
 * 30 s); later runs reuse it until an input changes. test/deploy/image.api.test.ts runs it
 * against the API server.
 */
import { lstatSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IMAGE_ENTRYPOINT, IMAGE_ENV, IMAGE_NAME, IMAGE_USER } from '../../hack/image.js';
import { parseManifests } from '../../src/kube/apply.js';
import { imageUnavailable, loadImage, runImage, type LoadedImage } from './image-support.js';

/** Stated limits (docs/install.md): compressed as shipped, and unpacked on a node. */
const MAX_ARCHIVE_MB = 75;
// Node.js itself is about 100 MB unpacked; the AWS and Alibaba Cloud SDKs about 60 MB.
const MAX_UNPACKED_MB = 300;

function duBytes(path: string): number {
  const stat = lstatSync(path);
  if (!stat.isDirectory()) return stat.size;
  return readdirSync(path).reduce((sum, name) => sum + duBytes(join(path, name)), 0);
}

let image: LoadedImage;

describe.skipIf(imageUnavailable !== undefined)('the container image (npm run image)', () => {
  beforeAll(() => {
    image = loadImage();
  }, 600_000);

  afterAll(() => {
    image.cleanup();
  });

  it('is a valid OCI archive that podman’s loader accepts under the name deploy/controller.yaml uses', () => {
    expect(image.badDigests).toEqual([]);
    expect(image.manifest.layers.map((l) => l.mediaType)).toEqual(image.config.rootfs.diff_ids.map(() => 'application/vnd.oci.image.layer.v1.tar+gzip'));
    expect(image.loadError).toBe('');
    expect(image.names).toEqual([IMAGE_NAME]);
    expect(image.index.manifests[0]?.annotations?.['org.opencontainers.image.ref.name']).toBe(IMAGE_NAME);
    const controller = parseManifests(readFileSync(new URL('../../deploy/controller.yaml', import.meta.url), 'utf8'));
    expect(JSON.stringify(controller).match(/"image":"[^"]+"/g)).toEqual([`"image":"${IMAGE_NAME}"`]);
  });

  it(`is under ${MAX_ARCHIVE_MB} MB as an archive and ${MAX_UNPACKED_MB} MB unpacked`, () => {
    expect(statSync(image.archive).size / 1e6).toBeLessThan(MAX_ARCHIVE_MB);
    expect(duBytes(image.rootfs) / 1e6).toBeLessThan(MAX_UNPACKED_MB);
  });

  it('runs as a non-root user who can change nothing in the image', () => {
    const { rootfs } = image;
    expect(image.config.config.User).toBe(`${IMAGE_USER.uid}:${IMAGE_USER.gid}`);
    expect(readFileSync(join(rootfs, 'etc/passwd'), 'utf8')).toContain(`${IMAGE_USER.name}:x:${IMAGE_USER.uid}:${IMAGE_USER.gid}:`);
    const writable: string[] = [];
    const walk = (dir: string): void => {
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        const stat = lstatSync(path);
        if (stat.isSymbolicLink()) continue;
        if (stat.uid !== 0 || (stat.mode & 0o002 && path !== join(rootfs, 'tmp'))) writable.push(path.slice(rootfs.length));
        if (stat.isDirectory()) walk(path);
      }
    };
    walk(rootfs);
    expect(writable).toEqual([]);
  });

  it('has `portico` as its entrypoint: version and --version', () => {
    expect(image.config.config.Entrypoint).toEqual([...IMAGE_ENTRYPOINT]);
    expect(image.config.config.Env).toEqual(expect.arrayContaining(Object.entries(IMAGE_ENV).map(([name, value]) => `${name}=${value}`)));
    for (const args of [['version'], ['--version']]) {
      const result = runImage(image, args);
      expect(result.stderr).toBe('');
      expect(result.stdout).toBe('portico 0.1.0\n');
      expect(result.status).toBe(0);
    }
  }, 120_000);

  it('serves `portico controller --help` from a read-only root filesystem', () => {
    const result = runImage(image, ['controller', '--help']);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toContain('portico controller');
    expect(result.stdout).toContain('--leader-elect');
  }, 120_000);

  it('loads every module the controller needs (production dependencies are complete)', () => {
    // Past flag parsing the controller imports its whole module graph, then fails on the kubeconfig.
    const result = runImage(image, ['controller', '--kubeconfig=/nonexistent/kubeconfig', '--metrics-addr=0', '--health-addr=0']);
    expect(result.stderr).not.toMatch(/ERR_MODULE_NOT_FOUND|Cannot find (module|package)/);
    expect(result.stderr).toContain('/nonexistent/kubeconfig');
    expect(result.status).not.toBe(0);
  }, 120_000);
});

describe('the Dockerfile', () => {
  it('runs Node with the same entrypoint and V8 flags as the image npm run image builds', () => {
    const dockerfile = readFileSync(join(import.meta.dirname, '../../Dockerfile'), 'utf8');
    const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(dockerfile)?.[1];
    expect(entrypoint && (JSON.parse(entrypoint) as unknown)).toEqual([...IMAGE_ENTRYPOINT]);
    for (const [name, value] of Object.entries(IMAGE_ENV)) expect(dockerfile).toMatch(new RegExp(`^ENV ${name}=${value}$`, 'm'));
  });
});
