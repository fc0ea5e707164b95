/**
 * The AWS SDK, pinned. Every S3 import goes through this module so the version lives in one place
 * and the driver works when imported by URL (full `npm:` specifiers, no import map needed).
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
