import { Stack, Token } from 'aws-cdk-lib';

/**
 * The size of an SSM parameter's value as CloudFormation will write it. `Stack.toJsonString`
 * gives a token of a few characters at synth, so sizing that says nothing: the value is sized
 * here with each deploy-time value (a bucket name, an ARN) at the longest it can resolve to.
 */

/**
 * Longest resolved lengths of the deploy-time values the stack puts in parameters.
 * Bucket names: 63 (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html).
 * SNS topic names: 256 (https://docs.aws.amazon.com/sns/latest/api/API_CreateTopic.html), in an
 * ARN of at most 64 more. SSM document names: 128
 * (https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_CreateDocument.html).
 * Log group names: 512 (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_CreateLogGroup.html).
 * KMS key ARNs: partition, region, account and a key id of at most 36 characters (mrk- + 32 hex):
 * 128 is generous. Region codes are under 20 characters; 32 is generous.
 */
export const LONGEST = { bucketName: 63, topicArn: 320, documentName: 128, logGroupName: 512, kmsKeyArn: 128, region: 32 } as const;

/**
 * Bytes of `JSON.stringify(value)` once deployed, with each deploy-time string in `longest` (value
 * → its longest length) at that length. A deploy-time value not listed is a mistake of the caller:
 * it throws, naming `what`, rather than guessing.
 */
export function resolvedJsonBytesAtMost(value: unknown, longest: ReadonlyMap<string, number>, what: string): number {
  const text = JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v !== 'string' || !Token.isUnresolved(v)) return v;
    const length = longest.get(v);
    // 'x' is one byte and needs no JSON escape: the count is exact for a value of that length.
    if (length !== undefined) return 'x'.repeat(length);
    throw new Error(`${what}: a value known only at deploy time (${v}) has no known longest length, so the parameter cannot be sized`);
  });
  return Buffer.byteLength(text);
}

/** The stack's region as the longest it can be, when it is a deploy-time value. */
export function regionLongest(stack: Stack): [string, number][] {
  return Token.isUnresolved(stack.region) ? [[stack.region, LONGEST.region]] : [];
}
