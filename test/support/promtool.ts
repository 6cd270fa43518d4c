// Prometheus' promtool as scripts/stack installs it (pinned in scripts/lib/settings.sh).
import { existsSync } from 'node:fs';
import execa from 'execa';
import { REPO_DIR } from './stack';

export function promtoolPath(): string {
  const promtool = execa.sync('bash', ['-c', 'source scripts/stack-lib.sh && printf %s "$PROMTOOL_BIN"'], { cwd: REPO_DIR, env: { REPO_DIR } }).stdout;
  if (!existsSync(promtool)) throw new Error(`${promtool} is missing: scripts/stack install (or npm test) installs it`);
  return promtool;
}
