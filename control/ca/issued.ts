// The certificates the CA issued lately, by identity and node: what the /ui workload page shows
// (serial, validity, expiry). Kept in memory, bounded (the newest issuance per identity and node,
// at most 10,000 of them; the oldest dropped first); a control plane restart forgets them until the
// node proxies renew (at half life).

export interface IssuedCertificate {
  readonly spiffeId: string;
  readonly node: string;
  readonly serialNumber: string;
  readonly notBefore: string;
  readonly notAfter: string;
  readonly issuedAt: string;
}

export class IssuedCertificates {
  private readonly byKey = new Map<string, IssuedCertificate>();

  constructor(private readonly max = 10_000) {}

  record(c: IssuedCertificate): void {
    const key = `${c.spiffeId}\u0000${c.node}`;
    this.byKey.delete(key);
    this.byKey.set(key, c);
    if (this.byKey.size > this.max) this.byKey.delete(this.byKey.keys().next().value as string);
  }

  /** The latest certificate of this identity per node, newest first. */
  forIdentity(spiffeId: string): IssuedCertificate[] {
    return [...this.byKey.values()].filter((c) => c.spiffeId === spiffeId).sort((a, b) => b.issuedAt.localeCompare(a.issuedAt));
  }
}
