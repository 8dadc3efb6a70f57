import { createPrivateKey, X509Certificate } from 'node:crypto';
import { ServerCredentials } from '@grpc/grpc-js';
import { type Config, ConfigError, readSettingFile } from './config.js';

/** What the server's transport security is: none, TLS, or TLS that also requires client certificates. */
export type TlsMode = 'off' | 'tls' | 'mtls';

type TlsSettings = Pick<Config, 'tlsCertFile' | 'tlsKeyFile' | 'tlsClientCaFile'>;

/** The mode the settings ask for (loadConfig has already refused a cert without a key and the like). */
export function tlsMode(config: TlsSettings): TlsMode {
  if (config.tlsCertFile === '') return 'off';
  return config.tlsClientCaFile === '' ? 'tls' : 'mtls';
}

/**
 * The credentials the server listens with: plaintext, TLS with the certificate chain and key
 * of `tlsCertFile` and `tlsKeyFile`, or, with `tlsClientCaFile`, TLS that requires a client
 * certificate signed by that CA. The files are read and checked here, at start-up, so a
 * missing file, one that is not PEM, or a key that does not belong to the certificate is a
 * ConfigError naming the file, not a failed handshake with every client later.
 */
export function serverCredentials(config: TlsSettings): ServerCredentials {
  const mode = tlsMode(config);
  if (mode === 'off') return ServerCredentials.createInsecure();
  const cert = readPem('tls-cert-file', config.tlsCertFile);
  const key = readPem('tls-key-file', config.tlsKeyFile);
  const certificate = parse('tls-cert-file', config.tlsCertFile, () => new X509Certificate(cert));
  const privateKey = parse('tls-key-file', config.tlsKeyFile, () => createPrivateKey(key));
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new ConfigError(`tls-key-file "${config.tlsKeyFile}" is not the key of the certificate in tls-cert-file "${config.tlsCertFile}"`);
  }
  let clientCa: Buffer | null = null;
  if (mode === 'mtls') {
    clientCa = readPem('tls-client-ca-file', config.tlsClientCaFile);
    parse('tls-client-ca-file', config.tlsClientCaFile, () => new X509Certificate(clientCa!));
  }
  return ServerCredentials.createSsl(clientCa, [{ cert_chain: cert, private_key: key }], mode === 'mtls');
}

/** The file's bytes, which must hold a PEM block; a ConfigError naming the setting and file otherwise. */
function readPem(flag: string, path: string): Buffer {
  const bytes = readSettingFile(flag, path);
  if (!bytes.includes('-----BEGIN ')) throw new ConfigError(`${flag} "${path}" is not PEM (no -----BEGIN line)`);
  return bytes;
}

/** What `make` parses from a PEM file, or a ConfigError saying the file does not hold it. */
function parse<T>(flag: string, path: string, make: () => T): T {
  try {
    return make();
  } catch (error) {
    const reason = (error as Error).message.replaceAll(/\s+/g, ' ');
    throw new ConfigError(`${flag} "${path}" does not hold a usable PEM ${flag === 'tls-key-file' ? 'private key' : 'certificate'}: ${reason}`);
  }
}
