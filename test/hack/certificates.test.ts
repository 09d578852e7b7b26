/**
 * Control-plane certificates can be generated many times in parallel: no shared serial file,
 * every certificate verifies against its CA, and serials never repeat.
 */
import { X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateCertificates } from '../../hack/certificates.js';

const SETS = 200;
const CONCURRENCY = 8;


describe('control-plane certificates', () => {
  it(`generates ${String(SETS)} sets, ${String(CONCURRENCY)} at a time, each valid with unique serials`, async () => {
    const root = await mkdtemp(join(tmpdir(), 'portico-certs-'));
    const serials = new Set<string>();
    let next = 0;
    try {
      const worker = async (): Promise<void> => {
        while (next < SETS) {
          const dir = join(root, String(next++));
          await mkdir(dir);
          const { issued } = await generateCertificates(dir);
          const ca = new X509Certificate(await readFile(join(dir, 'ca.crt')));
          for (const name of issued) {
            const cert = new X509Certificate(await readFile(join(dir, `${name}.crt`)));
            expect(cert.checkIssued(ca) && cert.verify(ca.publicKey), `${name} signed by its CA`).toBe(true);
            serials.add(cert.serialNumber);
          }
          await rm(dir, { recursive: true, force: true });
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    } finally {
      await rm(root, { recursive: true, force: true });
    }
    expect(serials.size).toBe(SETS * 3);
  }, 600_000);
});
