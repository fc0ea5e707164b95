/**
 * Where the S3 driver's endpoint, region and addressing style come from: the options, the
 * environment, and the AWS shared config file (`AWS_CONFIG_FILE`, default `~/.aws/config`) with
 * the profile in `AWS_PROFILE`, read by the SDK's own loader.
 *
 * - Endpoint: `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, else the profile's `endpoint_url` (or its
 *   `services` section), unless `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is set: exactly what the
 *   SDK resolves.
 * - Region: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`, else `us-east-1`.
 * - Addressing: `REP_S3_FORCE_PATH_STYLE` (1 or 0), else the profile's `s3 = addressing_style`
 *   (`path`, `virtual` or `auto`), else path style whenever a custom endpoint is configured
 *   (S3-compatible servers on a plain host:port cannot serve `bucket.host` names), else
 *   virtual-hosted as AWS prefers.
 *
 * @module
 */
import { loadConfig, S3Client, type S3ClientConfig } from "../deps/s3.ts";
import { ConfigError } from "../errors.ts";

/** The settings a caller may pin instead of the environment. */
export interface S3ConfigOptions {
  endpoint?: string;
  region?: string;
  forcePathStyle?: boolean;
}

/** What the driver connects with. */
export interface ResolvedS3Config {
  /** The custom endpoint, or undefined for AWS. */
  endpoint: string | undefined;
  /** Where the endpoint is configured, for messages (e.g. `AWS_ENDPOINT_URL_S3`). */
  endpointSetting: string;
  region: string;
  forcePathStyle: boolean;
}

/**
 * Resolve endpoint, region and addressing style. `base` is the client configuration without them
 * (a throwaway client built from it asks the SDK what the environment and profile configure).
 */
export async function resolveS3Config(
  options: S3ConfigOptions,
  base: S3ClientConfig,
): Promise<ResolvedS3Config> {
  const probe = new S3Client(base);
  try {
    const config = probe.config as unknown as {
      serviceConfiguredEndpoint?: () => Promise<string | undefined>;
      region: () => Promise<string>;
    };
    const endpoint = options.endpoint ??
      await config.serviceConfiguredEndpoint?.().catch((e: unknown) => {
        throw new ConfigError(
          `Cannot read the S3 endpoint from the AWS config: ${(e as Error).message}`,
          "Fix the profile in AWS_CONFIG_FILE (default ~/.aws/config)",
        );
      });
    const region = options.region ?? env("AWS_REGION") ?? env("AWS_DEFAULT_REGION") ??
      await config.region().catch(() => "us-east-1");
    const forcePathStyle = options.forcePathStyle ?? pathStyleFromEnv() ??
      await pathStyleFromProfile() ?? endpoint !== undefined;
    return {
      endpoint: endpoint || undefined,
      endpointSetting: endpointSetting(options, endpoint),
      region: region || "us-east-1",
      forcePathStyle,
    };
  } finally {
    probe.destroy();
  }
}

function pathStyleFromEnv(): boolean | undefined {
  const v = env("REP_S3_FORCE_PATH_STYLE");
  return v === undefined ? undefined : !/^(0|false|no|off)$/i.test(v.trim());
}

/** The profile's `s3 = addressing_style`: true for path, false for virtual, else undefined. */
async function pathStyleFromProfile(): Promise<boolean | undefined> {
  const style = await loadConfig<string | undefined>({
    environmentVariableSelector: () => undefined,
    configFileSelector: (profile) => profile["s3.addressing_style"],
    default: () => undefined,
  })().catch(() => undefined);
  if (style === undefined || style === "auto") return undefined;
  if (style === "path") return true;
  if (style === "virtual") return false;
  throw new ConfigError(
    `Invalid s3 addressing_style "${style}" in the AWS config profile ${profileName()}`,
    'Use "path", "virtual" or "auto" in AWS_CONFIG_FILE (default ~/.aws/config)',
  );
}

function endpointSetting(options: S3ConfigOptions, endpoint: string | undefined): string {
  if (options.endpoint !== undefined) return "the endpoint option";
  if (endpoint === undefined) return "";
  for (const name of ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]) {
    if (env(name) === endpoint) return name;
  }
  return `endpoint_url in profile ${profileName()} of ${env("AWS_CONFIG_FILE") ?? "~/.aws/config"}`;
}

function profileName(): string {
  return `"${env("AWS_PROFILE") ?? "default"}"`;
}

function env(name: string): string | undefined {
  try {
    const v = Deno.env.get(name);
    return v === "" ? undefined : v;
  } catch {
    return undefined; // no --allow-env: behave as if unset
  }
}
