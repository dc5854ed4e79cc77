import * as fs from 'node:fs';
import { NodeFS } from '@electric-sql/pglite/nodefs';

type NodeFsInitOptions = Parameters<NodeFS['init']>[1];

/** The parts of Emscripten's NODEFS this file touches. */
interface EmscriptenNodeFs {
  stream_ops: { fsync?: (stream: { nfd: number }) => number };
  tryFSOperation<T>(operation: () => T): T;
}

/**
 * PGlite's Node.js filesystem (each PostgreSQL file is a real file, written with `fs.writeSync`), with
 * `fsync` made real.
 *
 * Out of the box, Emscripten's NODEFS has no `fsync` (and its `fdatasync` syscall returns 0 without
 * doing anything), and PGlite starts PostgreSQL with `-F` (fsync = off): a commit reaches the
 * operating system's page cache, which survives a crash of the process but not of the machine. This
 * filesystem gives NODEFS streams an `fsync` that calls `fs.fsyncSync` on the real file descriptor;
 * with PostgreSQL started without `-F` and with `wal_sync_method = fsync` (so it calls `fsync()`,
 * which Emscripten routes to the stream, rather than `fdatasync()`), every commit flushes its WAL to
 * disk before it returns, as on a native server. {@link fsyncCount} lets the embedded server check that
 * this really happens, instead of trusting it.
 */
export class DurableNodeFS extends NodeFS {
  /** How many fsyncs reached the disk. */
  fsyncCount = 0;

  override async init(pg: Parameters<NodeFS['init']>[0], options: NodeFsInitOptions): ReturnType<NodeFS['init']> {
    const installFsync = (mod: { FS: unknown }) => {
      const nodefs = (mod.FS as { filesystems: { NODEFS: EmscriptenNodeFs } }).filesystems.NODEFS;
      nodefs.stream_ops.fsync = (stream) =>
        nodefs.tryFSOperation(() => {
          fs.fsyncSync(stream.nfd);
          this.fsyncCount++;
          return 0;
        });
    };
    return super.init(pg, { ...options, preRun: [...(options.preRun ?? []), installFsync] });
  }
}
