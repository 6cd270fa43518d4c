// Search attributes that let the Temporal UI filter pgops runs, e.g. PgopsTarget="primary".
// A production namespace needs them created once:
//   temporal operator search-attribute create --name PgopsTarget --type Keyword
//   temporal operator search-attribute create --name PgopsBackupId --type Keyword
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const PGOPS_TARGET = defineSearchAttributeKey('PgopsTarget', SearchAttributeType.KEYWORD);
export const PGOPS_BACKUP_ID = defineSearchAttributeKey('PgopsBackupId', SearchAttributeType.KEYWORD);
