/**
 * The local-directory driver: each key is a file under the root. Writes go to a temporary file in
 * the same directory and are renamed into place, so readers never see a partial object.
 *
 * @module
 */
import { join } from "node:path";
import { NotFoundError, StorageError } from "../errors.ts";
import { checkKey } from "./keys.ts";
import type { ByteRange, ListOptions, ObjectInfo, ObjectRange, Store } from "./store.ts";

/** How old a folder's modification time must be to stand for its content (see foldersMark). */
export const MARK_SETTLE_MS = 2000;

/** A {@link Store} on a local directory. */
export class LocalStore implements Store {
  readonly url: string;
  readonly root: string;

  constructor(root: string) {
    this.root = root;
    this.url = "file://" + root;
  }

  path(key: string): string {
    return join(this.root, checkKey(key));
  }

  async put(key: string, data: Uint8Array | ReadableStream<Uint8Array>): Promise<void> {
    const dest = this.path(key);
    const dir = dest.slice(0, dest.lastIndexOf("/"));
    const tmp = `${dest}.${crypto.randomUUID().slice(0, 8)}.tmp`;
    await Deno.mkdir(dir, { recursive: true });
    try {
      if (data instanceof Uint8Array) {
        await Deno.writeFile(tmp, data);
      } else {
        const file = await Deno.open(tmp, { write: true, createNew: true });
        await data.pipeTo(file.writable);
      }
      await Deno.rename(tmp, dest);
    } catch (e) {
      await Deno.remove(tmp).catch(() => {});
      throw wrap(e, `write ${key}`);
    }
  }

  /** Move an existing local file into the store (same filesystem: a rename, else a copy). */
  async putFile(key: string, src: string): Promise<void> {
    const dest = this.path(key);
    await Deno.mkdir(dest.slice(0, dest.lastIndexOf("/")), { recursive: true });
    try {
      await Deno.rename(src, dest);
    } catch {
      const file = await Deno.open(src);
      await this.put(key, file.readable);
    }
  }

  async get(key: string, range?: ByteRange): Promise<ReadableStream<Uint8Array>> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(this.path(key));
    } catch (e) {
      throw wrap(e, `read ${key}`);
    }
    if (!range) return file.readable;
    await file.seek(range.offset, Deno.SeekMode.Start);
    let left = range.length ?? Infinity;
    return new ReadableStream<Uint8Array>({
      async pull(ctl) {
        if (left <= 0) {
          file.close();
          ctl.close();
          return;
        }
        const buf = new Uint8Array(Math.min(left, 1 << 20));
        const n = await file.read(buf);
        if (n === null) {
          file.close();
          ctl.close();
          return;
        }
        left -= n;
        ctl.enqueue(buf.subarray(0, n));
      },
      cancel() {
        file.close();
      },
    }, { highWaterMark: 0 });
  }

  async getBytes(key: string, range?: ByteRange): Promise<Uint8Array> {
    const path = this.path(key);
    try {
      if (!range) return await Deno.readFile(path);
      using file = await Deno.open(path);
      await file.seek(range.offset, Deno.SeekMode.Start);
      const len = range.length ?? (await file.stat()).size - range.offset;
      const buf = new Uint8Array(Math.max(0, len));
      let off = 0;
      while (off < buf.length) {
        const n = await file.read(buf.subarray(off));
        if (n === null) break;
        off += n;
      }
      return buf.subarray(0, off);
    } catch (e) {
      throw wrap(e, `read ${key}`);
    }
  }

  openRange(key: string, offset: number, length: number): ObjectRange {
    let file: Deno.FsFile | null = null;
    let pos = offset;
    const end = offset + length;
    return {
      read: async (into) => {
        try {
          if (file === null) {
            file = await Deno.open(this.path(key));
            await file.seek(offset, Deno.SeekMode.Start);
          }
          const want = Math.min(into.byteLength, end - pos);
          let off = 0;
          while (off < want) {
            const n = await file.read(into.subarray(off, want));
            if (n === null) break;
            off += n;
          }
          pos += off;
          return into.subarray(0, off);
        } catch (e) {
          throw wrap(e, `read ${key}`);
        }
      },
      close: () => {
        file?.close();
        file = null;
        return Promise.resolve();
      },
    };
  }

  async getInto(key: string, offset: number, into: Uint8Array): Promise<Uint8Array> {
    try {
      using file = await Deno.open(this.path(key));
      await file.seek(offset, Deno.SeekMode.Start);
      let off = 0;
      while (off < into.length) {
        const n = await file.read(into.subarray(off));
        if (n === null) break;
        off += n;
      }
      return into.subarray(0, off);
    } catch (e) {
      throw wrap(e, `read ${key}`);
    }
  }

  async head(key: string): Promise<ObjectInfo | null> {
    try {
      const st = await Deno.stat(this.path(key));
      if (!st.isFile) return null;
      return { key, size: st.size, ...(st.mtime ? { mtime: st.mtime } : {}) };
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      throw wrap(e, `stat ${key}`);
    }
  }

  async *list(prefix: string, options?: ListOptions): AsyncIterable<ObjectInfo> {
    // Walk only the directories that can hold keys with this prefix.
    const cut = prefix.lastIndexOf("/");
    const dirKey = cut < 0 ? "" : prefix.slice(0, cut);
    const out: ObjectInfo[] = [];
    await this.#walk(dirKey, prefix, out, options?.startAfter);
    out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    for (const info of out) yield info;
  }

  /** Collect the files under `dirKey` whose keys start with `prefix` (and sort after `after`). */
  async #walk(dirKey: string, prefix: string, out: ObjectInfo[], after?: string): Promise<void> {
    const dir = dirKey ? join(this.root, dirKey) : this.root;
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(dir));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return;
      throw wrap(e, `list ${dirKey || "/"}`);
    }
    const subdirs: string[] = [];
    const files: { key: string; name: string }[] = [];
    // Filtered before anything is awaited: a listing after a recent key of a large folder (20,000
    // pack indexes) stays cheap, with a stat only for the keys it returns.
    for (const ent of entries) {
      const key = dirKey ? `${dirKey}/${ent.name}` : ent.name;
      if (ent.name.endsWith(".tmp")) continue;
      if (ent.isDirectory) {
        if ((key + "/").startsWith(prefix) || prefix.startsWith(key + "/")) subdirs.push(key);
      } else if (ent.isFile && key.startsWith(prefix) && (after === undefined || key > after)) {
        files.push({ key, name: ent.name });
      }
    }
    await Promise.all(files.map(async ({ key, name }) => {
      const st = await Deno.stat(join(dir, name)).catch(() => null);
      if (st) out.push({ key, size: st.size, ...(st.mtime ? { mtime: st.mtime } : {}) });
    }));
    for (const sub of subdirs) await this.#walk(sub, prefix, out, after);
  }

  async *listPrefixes(prefix: string): AsyncIterable<string> {
    const dir = join(this.root, prefix);
    let names: string[];
    try {
      names = [];
      // One blocking read: a folder of 100k experiments takes half as long as entry by entry.
      for (const ent of Deno.readDirSync(dir)) if (ent.isDirectory) names.push(ent.name);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return;
      throw wrap(e, `list ${prefix}`);
    }
    names.sort();
    for (const n of names) yield `${prefix}${n}/`;
  }

  /**
   * The folder's modification time (changed by the file system whenever an entry is added or
   * removed), with its inode. Null for a time less than {@link MARK_SETTLE_MS} ago: changes that
   * close together may share one time stamp, so only a settled time says nothing changed since.
   */
  async foldersMark(prefix: string): Promise<string | null> {
    try {
      const st = await Deno.stat(join(this.root, prefix));
      const mtime = st.mtime?.getTime();
      if (!st.isDirectory || mtime === undefined || st.ino === null) return null;
      if (Math.abs(Date.now() - mtime) < MARK_SETTLE_MS) return null;
      return `${st.dev}:${st.ino}:${mtime}:${st.nlink ?? ""}`;
    } catch {
      return null;
    }
  }

  async delete(keys: string[]): Promise<void> {
    const parents = new Set<string>();
    await Promise.all(keys.map(async (key) => {
      try {
        await Deno.remove(this.path(key));
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw wrap(e, `delete ${key}`);
      }
      for (let k = key; k.includes("/");) {
        k = k.slice(0, k.lastIndexOf("/"));
        parents.add(k);
      }
    }));
    // Object stores have no folders: drop the ones left empty, deepest first, so a deleted
    // experiment's folder does not linger in listings.
    const deepestFirst = [...parents].sort((a, b) => b.split("/").length - a.split("/").length);
    for (const dir of deepestFirst) {
      await Deno.remove(join(this.root, dir)).catch(() => {}); // fails when not empty: fine
    }
  }

  async close(): Promise<void> {}
}

function wrap(e: unknown, what: string): Error {
  if (e instanceof NotFoundError || e instanceof StorageError) return e;
  if (e instanceof Deno.errors.NotFound) return new NotFoundError(`Cannot ${what}: no such object`);
  if (e instanceof Deno.errors.PermissionDenied) {
    return new StorageError(
      `Cannot ${what}: permission denied`,
      "Check the permissions of the repository directory",
      { cause: e },
    );
  }
  const msg = e instanceof Error ? e.message : String(e);
  return new StorageError(`Cannot ${what}: ${msg}`, undefined, { cause: e });
}
