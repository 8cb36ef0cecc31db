import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join, relative } from 'node:path';

/**
 * A directory tree as comparable lines: each entry's path, mode and content hash (or link target),
 * depth first in name order, so a restored tree can be compared with the original exactly.
 */
export function treeListing(root: string, dir = root): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const path = join(dir, name);
      const info = lstatSync(path);
      const what = info.isSymbolicLink() ? `-> ${readlinkSync(path)}` : info.isFile() ? createHash('sha256').update(readFileSync(path)).digest('hex') : 'dir';
      const self = `${relative(root, path)} ${(info.mode & 0o7777).toString(8)} ${what}`;
      return info.isDirectory() && !info.isSymbolicLink() ? [self, ...treeListing(root, path)] : [self];
    });
}
