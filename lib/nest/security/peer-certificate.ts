/**
 * Mapping a peer's TLS client certificate to a node id, for mutual TLS (module option
 * `peerCertificateNodeId`). The certificate must already have been verified against the cluster's CA
 * by the TLS layer (`requestCert` + `ca` in the listener's `httpsOptions`); this only reads its name.
 */
import type { PeerCertificate } from 'node:tls';
import type { NodeId } from '../../core/types.js';

/**
 * The node id in the certificate's subject common name, `<prefix><id>` (default `node-3` → 3), or
 * undefined when the name is not of that form.
 */
export function nodeIdFromCommonName(prefix = 'node-'): (certificate: PeerCertificate) => NodeId | undefined {
  return (certificate) => {
    const cn = certificate?.subject?.CN;
    const name = Array.isArray(cn) ? undefined : cn;
    if (typeof name !== 'string' || !name.startsWith(prefix)) return undefined;
    const digits = name.slice(prefix.length);
    if (!/^[1-9][0-9]{0,15}$/.test(digits)) return undefined;
    const id = Number(digits);
    return Number.isSafeInteger(id) ? id : undefined;
  };
}
