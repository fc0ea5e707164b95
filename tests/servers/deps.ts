/**
 * Pinned npm packages used by the in-process test servers (kept out of `src/deps`: they never ship).
 *
 * @module
 */
import "../../src/deps/quiet_deprecations.ts";

export { default as S3rver } from "npm:s3rver@3.7.1";
// firebase-tools ships no type declarations: describe the little we use.
// deno-lint-ignore no-import-prefix
import * as emulatorIndex from "npm:firebase-tools@15.34.2/lib/emulator/storage/index.js";
// deno-lint-ignore no-import-prefix
import * as emulatorServer from "npm:firebase-tools@15.34.2/lib/emulator/storage/server.js";
// deno-lint-ignore no-import-prefix
import * as emulatorRegistry from "npm:firebase-tools@15.34.2/lib/emulator/registry.js";
import type { IncomingMessage, ServerResponse } from "node:http";

/** The parts of firebase-tools' `StorageEmulator` the GCS test server touches. */
export interface StorageEmulatorInstance {
  readonly adminStorageLayer: { createBucket(id: string): void };
  reset(): void;
  getPersistenceTmpDir(): string;
}

/** Constructor arguments of `StorageEmulator`. */
export interface StorageEmulatorArgs {
  projectId: string;
  host: string;
  port: number;
  auto_download?: boolean;
  rules?: unknown;
}

/** firebase-tools' Cloud Storage emulator class. */
export const StorageEmulator = (emulatorIndex as unknown as {
  StorageEmulator: new (args: StorageEmulatorArgs) => StorageEmulatorInstance;
}).StorageEmulator;

/** Build the emulator's Express app (what `StorageEmulator.start()` listens with). */
export const createApp = (emulatorServer as unknown as {
  createApp(
    projectId: string,
    emulator: StorageEmulatorInstance,
  ): Promise<(req: IncomingMessage, res: ServerResponse) => void>;
}).createApp;

/** What the emulator registry needs of a registered emulator. */
export interface RegisteredEmulator {
  getName(): string;
  getInfo(): { name: string; host: string; port: number };
}

/** firebase-tools' process-wide emulator registry (the emulator builds self links from it). */
export const EmulatorRegistry = (emulatorRegistry as unknown as {
  EmulatorRegistry: {
    set(name: string, instance: RegisteredEmulator): void;
    clear(name: string): void;
    get(name: string): RegisteredEmulator | undefined;
  };
}).EmulatorRegistry;
