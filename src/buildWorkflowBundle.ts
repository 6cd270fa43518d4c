// Bundles the workflows once at build time (npm run build), so production workers load a file
// instead of running webpack at every start: faster starts and ~100 MB less memory.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';

export const WORKFLOW_BUNDLE_FILE = path.join(__dirname, 'workflow-bundle.js');

async function main(): Promise<void> {
  const { code } = await bundleWorkflowCode({ workflowsPath: require.resolve('./workflows') });
  writeFileSync(WORKFLOW_BUNDLE_FILE, code);
  console.log(`wrote ${WORKFLOW_BUNDLE_FILE} (${(code.length / 1024).toFixed(0)} KiB)`);
}

if (require.main === module) void main();
