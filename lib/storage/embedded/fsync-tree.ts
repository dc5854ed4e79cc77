import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Flushes every file and directory under `root` to disk. PGlite runs initdb in memory and copies the
 * result into a new data directory with plain writes; PostgreSQL's own checkpoints never fsync those
 * files, since they did not go through its buffers. Without this, a power cut soon after a node's
 * first start could leave it a torn catalog.
 */
export async function fsyncTree(root: string): Promise<void> {
  const directories = [root];
  const files: string[] = [];
  for (let i = 0; i < directories.length; i++) {
    for (const entry of await fs.promises.readdir(directories[i]!, { withFileTypes: true })) {
      const full = path.join(directories[i]!, entry.name);
      if (entry.isDirectory()) directories.push(full);
      else if (entry.isFile()) files.push(full);
    }
  }
  // Files first, then the directories that name them, deepest first.
  await inBatches(files, 64, (file) => fsyncPath(file));
  for (const directory of directories.reverse()) await fsyncPath(directory);
  await fsyncPath(path.dirname(root));
}

async function fsyncPath(target: string): Promise<void> {
  const handle = await fs.promises.open(target, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function inBatches<T>(items: readonly T[], size: number, work: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(work));
}
