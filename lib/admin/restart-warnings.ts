import type { AddressInfo } from 'node:net';
import { formatAddress } from '../config/address.js';
import type { Config } from '../config/schema.js';
import type { ConfigIssue } from '../core/errors.js';

/**
 * One warning per admin setting read only at start that `config` changes (`admin.listen`,
 * `admin.token_file`): the reload applies, and they take effect at the next start.
 * (`admin.allowed_hosts` applies at every reload.)
 */
export function restartWarnings(atStart: Config['admin'], config: Config, bound: AddressInfo | undefined): ConfigIssue[] {
  const warnings: ConfigIssue[] = [];
  const where = bound ? ` (${formatAddress(bound.address, bound.port)})` : '';
  if (config.admin.listen !== atStart.listen) {
    warnings.push({
      path: 'admin.listen',
      message: `changed from ${atStart.listen} to ${config.admin.listen}: takes effect when hotconf restarts; the admin API stays where it started${where}`,
    });
  }
  if (config.admin.token_file !== atStart.token_file) {
    warnings.push({
      path: 'admin.token_file',
      message: `changed from ${atStart.token_file ?? '(none)'} to ${config.admin.token_file ?? '(none)'}: takes effect when hotconf restarts; the admin API keeps the token it started with`,
    });
  }
  return warnings;
}
