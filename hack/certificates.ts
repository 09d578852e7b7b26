/**
 * Certificates for the local control plane. Each certificate gets a random 128-bit serial
 * passed on the command line: no shared `ca.srl` file, so certificates can be signed in
 * parallel (a shared serial file made `openssl x509 -CAcreateserial` fail at random with
 * "Unable to load number from ca.srl").
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

async function openssl(dir: string, args: string[]): Promise<void> {
  await execFileAsync('openssl', args, { cwd: dir });
}

/** A positive serial (top bit clear), as RFC 5280 requires. */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return `0x${bytes.toString('hex')}`;
}

export interface CertificateSet {
  /** Each issued certificate's file name (without `.crt`). */
  issued: readonly string[];
}

/** Writes ca.{key,crt}, apiserver/admin/kcm {key,crt} and sa.{key,pub} into `dir`. */
export async function generateCertificates(dir: string, serverAddresses: readonly string[] = ['127.0.0.1']): Promise<CertificateSet> {
  await openssl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=portico-local-ca', '-set_serial', randomSerial()]);
  const sans = [...serverAddresses.map((a) => `IP:${a}`), 'DNS:localhost', 'DNS:kubernetes.default.svc'].join(',');
  await writeFile(join(dir, 'san.ext'), `subjectAltName=${sans}\nextendedKeyUsage=serverAuth\n`);
  await writeFile(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  const issue = async (name: string, subject: string, ext: string): Promise<void> => {
    await openssl(dir, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject]);
    await openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key',
      '-set_serial', randomSerial(), '-out', `${name}.crt`, '-days', '2', '-extfile', ext]);
  };
  await Promise.all([
    issue('apiserver', '/CN=kube-apiserver', 'san.ext'),
    issue('admin', '/O=system:masters/CN=portico-admin', 'client.ext'),
    issue('kcm', '/CN=system:kube-controller-manager', 'client.ext'),
    // ES256 service-account signing key: as good as RSA here and far cheaper to make.
    openssl(dir, ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', 'sa.key']),
  ]);
  await openssl(dir, ['pkey', '-in', 'sa.key', '-pubout', '-out', 'sa.pub']);
  return { issued: ['apiserver', 'admin', 'kcm'] };
}
