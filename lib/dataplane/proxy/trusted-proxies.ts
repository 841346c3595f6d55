import { BlockList, isIP } from 'node:net';

/**
 * A listener's `trusted_proxies`: the peers whose forwarding headers are kept and extended
 * (`upstreamRequestHeaders`), as Caddy's `trusted_proxies`. Built once per listener per
 * generation from validated CIDRs; immutable after construction.
 */
export class TrustedProxies {
  readonly #list = new BlockList();
  readonly #empty: boolean;

  /** `cidrs`: addresses or CIDR blocks, as the schema validated them (`10.0.0.0/8`, `::1`). */
  constructor(cidrs: readonly string[]) {
    this.#empty = cidrs.length === 0;
    for (const cidr of cidrs) {
      const [address, bits] = cidr.split('/') as [string, string | undefined];
      const v6 = isIP(address) === 6;
      this.#list.addSubnet(address, bits === undefined ? (v6 ? 128 : 32) : Number(bits), v6 ? 'ipv6' : 'ipv4');
    }
  }

  /** Whether a connection from `address` (a socket's `remoteAddress`) is trusted; never with no `trusted_proxies`. */
  trusts(address: string | undefined): boolean {
    if (this.#empty || !address) return false;
    // A dual-stack listener reports an IPv4 peer as ::ffff:a.b.c.d.
    const plain = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
    return this.#list.check(plain, isIP(plain) === 6 ? 'ipv6' : 'ipv4');
  }
}

/** No peer is trusted. */
export const TRUST_NO_PEER = new TrustedProxies([]);
