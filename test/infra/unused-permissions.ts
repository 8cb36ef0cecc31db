/**
 * The ONE list of permissions the template grants that the end-to-end run never uses, each with
 * the reason it stays (test/e2e/system.test.ts, "every permission the template grants is used").
 * A grant is "<owner> <statement> <action> <resource>" (permissions.ts grantKey): the principal,
 * the statement's Sid (or its policy's name and position), one action and one resource pattern of
 * it, the resource shortened (no partition, region or account; CDK's hash suffixes off).
 *
 * A grant the run does not use must be exercised by a scenario, removed from the stack (only when
 * no code path needs it), or listed here. The test fails on an unused grant that is not listed, and
 * on an entry that no longer names an unused grant. To extend: copy the line the test prints.
 * In an entry, a field that is `*` matches any value (a literal `*` too), and `host:*` any group's hosts.
 */
export interface UnusedPermission {
  readonly grant: string;
  readonly reason: string;
}

const SSM_AGENT = "AWS's managed policy for the SSM agent (registration, Run Command delivery, Session Manager); the run plays Run Command by executing the document's script, so no SSM agent calls AWS";
const RUN_COMMAND_OUTPUT = "the SSM agent writes Run Command's output to the stack's log group with the host's role (SendCommand's CloudWatchOutputConfig); moto runs no SSM agent (permissions.test.ts proves CreateLogStream/PutLogEvents)";
const LAMBDA_LOGS = 'the Lambda service writes the function\'s logs with its role; the run invokes the handlers in-process, so CloudWatch Logs is never called';

export const UNUSED_PERMISSIONS: readonly UnusedPermission[] = [
  { grant: 'host:* AmazonSSMManagedInstanceCore[1] * *', reason: SSM_AGENT },
  { grant: 'host:* AmazonSSMManagedInstanceCore[2] * *', reason: SSM_AGENT },
  { grant: 'host:* AmazonSSMManagedInstanceCore[3] * *', reason: SSM_AGENT },
  { grant: 'host:* WriteCommandOutput * *', reason: RUN_COMMAND_OUTPUT },
  { grant: 'host:* FindCommandLogGroup logs:DescribeLogGroups *', reason: RUN_COMMAND_OUTPUT },
  { grant: 'verifier * logs:CreateLogStream *', reason: LAMBDA_LOGS },
  { grant: 'verifier * logs:PutLogEvents *', reason: LAMBDA_LOGS },
  { grant: 'monitor * logs:CreateLogStream *', reason: LAMBDA_LOGS },
  { grant: 'monitor * logs:PutLogEvents *', reason: LAMBDA_LOGS },
  {
    grant: 'monitor * ssm:DescribeInstanceInformation *',
    reason: "moto 5.2 answers DescribeInstanceInformation with a tag filter with HTTP 500, so the run hands the monitor a stand-in inventory (local-system/flow.ts HostInventory); lambdas/shared/aws.ts SsmInstanceDirectory calls it on AWS",
  },
  {
    grant: 'host:* BackupObjectSettings s3:AbortMultipartUpload *',
    reason: 'the failed upload runs once (group db, daily tier); a failure can come in any tier and group, so every tier prefix of every group is granted by the same statement (host-access.ts, one loop over TIERS)',
  },
  { grant: 'host:app FindOwnLeftoverUploads s3:ListBucketMultipartUploads *', reason: "the failed upload is group db's; group app's statement is the same construct's (host-access.ts)" },
  { grant: 'host:app PublishAlerts sns:Publish *', reason: "a host alerts only on its own failure; the failed upload is group db's (same construct)" },
  { grant: 'host:app AlertKeyThroughSns * *', reason: "a host alerts only on its own failure; the failed upload is group db's (same construct)" },
  {
    grant: 'host:app ReadGroupParameters ssm:GetParameter ssm:parameter/coldseal/groups/app/signing-public-keys',
    reason: "the group's signing public keys are read by a restore or drill on a host of the group (agent restore/verify, trusted keys); group app has no drill host and its restores in the run are the operator's",
  },
  {
    grant: 'verifier PriceCache s3:PutObject *',
    reason: 'the verifier caches the AWS Price List answer in state/prices/ only when the Price List answers; moto does not serve the Price List API (it answers 404), so the run prices from the committed table (test/infra/report-stack.test.ts proves the write is allowed)',
  },
  {
    grant: 'drill ReadGroupBackups * *',
    reason: 'a drill reads the latest backup of each source, all in one tier per run (today: the calendar\'s); the statement grants every tier prefix because the latest backup can be in any tier',
  },
];

function fieldMatches(pattern: string, value: string, index: number): boolean {
  if (pattern === '*' || pattern === value) return true;
  return index === 0 && pattern === 'host:*' && value.startsWith('host:');
}

/** Whether an entry names a grant key: four space-separated fields, each equal or a wildcard. */
export function entryMatches(entry: string, grant: string): boolean {
  const pattern = entry.split(' ');
  const value = grant.split(' ');
  return pattern.length === value.length && pattern.every((p, i) => fieldMatches(p, value[i], i));
}
