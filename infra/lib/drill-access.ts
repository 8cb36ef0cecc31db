import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { DRILLS_PREFIX, TIERS, WAL_PREFIX, groupPrefix } from '../../format/layout';
import { acknowledgeGroupObjects } from './nag';
import { checkNameProp } from './settings';

export interface DrillAccessProps {
  /** Group whose backups the drill host restores. */
  readonly group: string;
  readonly bucket: s3.IBucket;
  readonly key: kms.IKey;
  /**
   * The group has a PITR source: the drill host also reads and lists the group's WAL archive
   * (`coldseal drill --pitr`: the recovery window, then restore_command's fetches).
   * @default false
   */
  readonly walArchive?: boolean;
}

/**
 * The extra access of the drill host: read its group's backups (every tier) and write signed
 * receipts under drills/<group>/. Attach it next to the group's HostAccess policy.
 */
export class DrillAccess extends Construct {
  readonly policy: iam.ManagedPolicy;

  constructor(scope: Construct, id: string, props: DrillAccessProps) {
    super(scope, id);
    checkNameProp('DrillAccess props.group', 'group', props.group);
    const stack = Stack.of(this);
    const receipts = props.bucket.arnForObjects(`${DRILLS_PREFIX}${props.group}/*`);
    this.policy = new iam.ManagedPolicy(this, 'Policy', {
      description: `coldseal restore-drill host of group ${props.group}: read the group's backups, write drill receipts`,
      statements: [
        // GetObjectVersion: the part reader pins every read after an object's first to its version
        // (runtime/part-reader.ts). The drill reads no lock headers and no tags, so it gets neither
        // s3:GetObjectRetention nor s3:GetObjectTagging (unused in the recorded-calls proof).
        new iam.PolicyStatement({
          sid: 'ReadGroupBackups',
          actions: ['s3:GetObject', 's3:GetObjectVersion'],
          resources: TIERS.map((tier) => props.bucket.arnForObjects(`${groupPrefix(tier, props.group)}*`)),
        }),
        new iam.PolicyStatement({
          sid: 'ListGroupBackups',
          actions: ['s3:ListBucket'],
          resources: [props.bucket.bucketArn],
          conditions: { StringLike: { 's3:prefix': TIERS.map((tier) => `${groupPrefix(tier, props.group)}*`) } },
        }),
        ...(props.walArchive ? walReadStatements(props) : []),
        new iam.PolicyStatement({
          sid: 'WriteNewReceiptsOnly',
          actions: ['s3:PutObject'],
          resources: [receipts],
          conditions: { Null: { 's3:if-none-match': 'false' } },
        }),
        new iam.PolicyStatement({
          sid: 'DataKeyThroughS3',
          actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
          resources: [props.key.keyArn],
          conditions: { StringEquals: { 'kms:ViaService': `s3.${stack.region}.amazonaws.com` } },
        }),
      ],
    });
    acknowledgeGroupObjects(this.policy, props.bucket, [
      ...TIERS.map((tier) => `${groupPrefix(tier, props.group)}*`),
      `${DRILLS_PREFIX}${props.group}/*`,
      ...(props.walArchive ? [`${WAL_PREFIX}${props.group}/*`] : []),
    ]);
  }
}

/**
 * The group's WAL objects by name and its WAL keys by listing, never another group's. A ListBucket
 * limited by s3:prefix does not turn a GET of a missing key into a 404 (that needs ListBucket on the
 * whole bucket, which would show every group's key names): restore_command gets 403 for a WAL file
 * not in the archive and asks a listing under the key's own name (runtime/s3-presence.ts
 * whyUnreadable), which this allows. No s3:GetObjectVersion: WAL is written once, never pinned.
 */
function walReadStatements(props: DrillAccessProps): iam.PolicyStatement[] {
  const prefix = `${WAL_PREFIX}${props.group}/`;
  return [
    new iam.PolicyStatement({ sid: 'ReadGroupWal', actions: ['s3:GetObject'], resources: [props.bucket.arnForObjects(`${prefix}*`)] }),
    new iam.PolicyStatement({ sid: 'ListGroupWal', actions: ['s3:ListBucket'], resources: [props.bucket.bucketArn], conditions: { StringLike: { 's3:prefix': [`${prefix}*`] } } }),
  ];
}
