import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A PEM file written for a test: its path and its bytes. */
export interface PemFile {
  readonly path: string;
  readonly pem: Buffer;
}

/** A certificate and its private key. */
export interface Issued {
  readonly cert: PemFile;
  readonly key: PemFile;
}

/** Throwaway certificates, made with the openssl binary in a directory of their own. */
export interface Certificates {
  readonly dir: string;
  /** A self-signed CA named `name`. */
  ca(name: string): Issued;
  /**
   * A certificate for `name` that `ca` signed: for a server (subject alternative names
   * localhost and 127.0.0.1) or a client.
   */
  issue(ca: Issued, name: string, use: 'server' | 'client'): Issued;
  /** Removes the directory and everything in it. */
  remove(): void;
}

const DAYS = '2';
/** P-256 keys: made in milliseconds, where RSA keys take a noticeable part of a second each. */
const NEW_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A fresh directory under the system's temporary one, for one test run's certificates. */
export function makeCertificates(): Certificates {
  const dir = mkdtempSync(join(tmpdir(), 'chat-rebuild-tls-'));
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const files = (name: string): Issued => ({ cert: pemFile(join(dir, `${name}.crt`)), key: pemFile(join(dir, `${name}.key`)) });
  return {
    dir,
    ca(name) {
      openssl('req', '-x509', ...NEW_KEY, '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', DAYS, '-subj', `/CN=${name}`,
        '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
      return files(name);
    },
    issue(ca, name, use) {
      const extensions = use === 'server'
        ? ['subjectAltName=DNS:localhost,IP:127.0.0.1', 'extendedKeyUsage=serverAuth']
        : ['extendedKeyUsage=clientAuth'];
      writeFileSync(join(dir, `${name}.ext`), [...extensions, 'basicConstraints=CA:FALSE', 'keyUsage=critical,digitalSignature'].join('\n'));
      openssl('req', ...NEW_KEY, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
      openssl('x509', '-req', '-in', `${name}.csr`, '-CA', ca.cert.path, '-CAkey', ca.key.path, '-CAcreateserial',
        '-out', `${name}.crt`, '-days', DAYS, '-extfile', `${name}.ext`);
      return files(name);
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function pemFile(path: string): PemFile {
  return { path, pem: readFileSync(path) };
}
