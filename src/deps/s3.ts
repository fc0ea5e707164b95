/**
 * The AWS SDK, pinned. Every S3 import goes through this module so the version lives in one place
 * and the driver works when imported by URL (full `npm:` specifiers, no import map needed). The
 * `@smithy` packages are the ones the SDK itself resolves to (see deno.lock): the two HTTP
 * handlers, and the shared-config loader the SDK reads `~/.aws/config` with.
 *
 * @module
 */
export {
  CreateBucketCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from "npm:@aws-sdk/client-s3@3.1175.0";
export type { S3ClientConfig } from "npm:@aws-sdk/client-s3@3.1175.0";
export { Upload } from "npm:@aws-sdk/lib-storage@3.1175.0";
export { NodeHttpHandler } from "npm:@smithy/node-http-handler@4.14.2";
export { FetchHttpHandler } from "npm:@smithy/fetch-http-handler@5.8.1";
export { loadConfig } from "npm:@smithy/core@3.41.1/config";
export type { HttpHandler } from "npm:@smithy/core@3.41.1/protocols";
export type { HttpHandlerOptions, HttpRequest, HttpResponse } from "npm:@smithy/types@4.20.0";
