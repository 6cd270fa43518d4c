// The staging dir holds whole databases in dumps: only the worker's own user may read or change
// it. Plain file-system checks, so these run without the stack (as root, which may chown).
import execa from 'execa';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { prepareStagedDir } from '../src/backup/stagedBackup';
import { writeManifest } from '../src/backup/manifest/store';
import type { BackupManifest } from '../src/backup/manifest';

let parent: string;
beforeEach(() => (parent = mkdtempSync(path.join(tmpdir(), 'pgops-staging-test-'))));
afterEach(() => rmSync(parent, { recursive: true, force: true }));

const modeOf = (file: string) => statSync(file).mode & 0o777;

test('a staging dir pgops creates, and each backup folder in it, is 0700 whatever the umask', async () => {
  const stagingDir = path.join(parent, 'new', 'staging');
  const before = process.umask(0o022);
  try {
    const dir = await prepareStagedDir(stagingDir, 'b-20240101');
    expect(modeOf(stagingDir)).toBe(0o700);
    expect(modeOf(dir)).toBe(0o700);
  } finally {
    process.umask(before);
  }
});

test('the manifest is written 0600', async () => {
  const dir = await prepareStagedDir(path.join(parent, 'staging'), 'b-20240101');
  await writeManifest(dir, { backupId: 'b-20240101' } as BackupManifest);
  expect(modeOf(path.join(dir, 'manifest.json'))).toBe(0o600);
});

test('a staging dir owned by another user is refused, naming the dir, its owner and the fix', async () => {
  const nobody = Number((await execa('id', ['-u', 'nobody'])).stdout);
  const stagingDir = path.join(parent, 'staging');
  mkdirSync(stagingDir, { mode: 0o700 });
  chownSync(stagingDir, nobody, nobody);
  await expect(prepareStagedDir(stagingDir, 'b-20240101')).rejects.toMatchObject({
    type: 'StagingUnsafe',
    nonRetryable: true,
    message: `staging dir ${stagingDir} is owned by uid ${nobody} with mode 0700, but must belong to this worker's user (uid ${process.getuid!()}) and be writable by it alone; chown ${process.getuid!()} and chmod 0700 it, or point PGOPS_STAGING_DIR at a directory that is`,
  });
});

test('a staging dir that group or others may write to is refused', async () => {
  const stagingDir = path.join(parent, 'staging');
  mkdirSync(stagingDir);
  for (const mode of [0o770, 0o707, 0o1777]) {
    chmodSync(stagingDir, mode);
    await expect(prepareStagedDir(stagingDir, 'b-20240101')).rejects.toMatchObject({ type: 'StagingUnsafe', message: expect.stringContaining(`chmod 0700`) });
  }
});
