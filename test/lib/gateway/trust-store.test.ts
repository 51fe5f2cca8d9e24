/**
 * The relay trusts Node's bundled root certificates (plus IOTCORE_CA_FILE, when set). ClearBlade's G5 bridge hosts
 * chain to DigiCert's G5 roots (docs/deploy.md, "The bridge host and its CA"): this checks that the Node running
 * the tests bundles both, so a Node release that dropped them would fail here before a deployment fails to connect.
 */
import { X509Certificate } from 'node:crypto';
import { rootCertificates } from 'node:tls';
import { describe, expect, it } from 'vitest';

const bundled = rootCertificates.map((pem) => new X509Certificate(pem));
const named = (commonName: string): X509Certificate[] => bundled.filter((c) => c.subject.split('\n').includes(`CN=${commonName}`));

describe("Node's bundled roots", () => {
  it.each(['DigiCert TLS ECC P384 Root G5', 'DigiCert TLS RSA4096 Root G5'])('include %s, self-signed and valid', (commonName) => {
    const [root, ...others] = named(commonName);
    expect(root, `${commonName} is not among Node's ${bundled.length} bundled roots; set IOTCORE_CA_FILE to its PEM`).toBeDefined();
    expect(others).toEqual([]);
    expect(root!.issuer).toBe(root!.subject);
    expect(root!.ca).toBe(true);
    expect(new Date(root!.validTo).getTime()).toBeGreaterThan(Date.now());
  });

  it('are looked up by exact name: a root that is not there is not found', () => {
    expect(named('DigiCert TLS ECC P384 Root G6')).toEqual([]);
  });
});
