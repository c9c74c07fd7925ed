/**
 * Ties an evidence report to a signed checkpoint, and checks such a report offline.
 *
 * The proof: the report's own rows in full, and for every other row between its first row and the
 * covering checkpoint only the content digest (hash format 2: hash = sha256(prev_hash || digest)).
 * Folding them from the first row's prev_hash must give the checkpoint's head hash, and the
 * checkpoint's signature must verify with the public key. Then the report is rebuilt from its rows
 * and must say the same: a report edited after it was built does not verify.
 */
import type { KeyObject } from 'node:crypto';
import { contentDigest, linkHash, rowHash, type AuditStore, type StoredAuditEvent } from '../activities/audit.js';
import { checkpointSignatureValid, keyIdOf, checkpointSchema } from '../activities/audit-checkpoints.js';
import { NOTICE_KINDS, type CheckpointCheck } from '../activities/audit-verification.js';
import { buildEvidence, type Evidence, type EvidenceAnchorInput } from './evidence.js';

/** The anchor for a report on `reportRows` (one offboarding's rows, from eventsFor). */
export async function anchorFor(
  store: AuditStore,
  check: CheckpointCheck,
  reportRows: StoredAuditEvent[],
): Promise<EvidenceAnchorInput> {
  const failures = check.findings.filter((f) => !NOTICE_KINDS.has(f.kind));
  if (
    check.validSignatures === 0 &&
    check.findings.some((f) => f.kind === 'unanchored' && /public key/.test(f.message))
  )
    return { failures, proof: null, noProofReason: 'no public key to check the checkpoints with' };
  const seqs = reportRows.map((row) => row.seq);
  const first = Math.min(...seqs);
  const last = Math.max(...seqs);
  const covering = check.matching.filter((c) => c.seq >= last).sort((a, b) => a.seq - b.seq)[0];
  if (!covering)
    return {
      failures,
      proof: null,
      noProofReason: `the report's last row is seq ${last} and the latest checkpoint covers seq ${check.latest?.seq ?? 'none'}; the worker signs one within 15 s of new rows (OFFBOARD_AUDIT_CHECKPOINT_SECONDS) and when the offboarding ends: ask again shortly`,
    };
  const mine = new Set(seqs);
  const between = await store.rowsBetween(first, covering.seq);
  const old = between.find((row) => !mine.has(row.seq) && row.hashVersion < 2);
  if (old)
    return {
      failures,
      proof: null,
      noProofReason: `a row of the older hash format (seq ${old.seq}) lies between this report and its checkpoint: check with offboard audit verify`,
    };
  return {
    failures,
    proof: {
      checkpoint: covering,
      rows: reportRows.map((row) => ({ ...row })),
      links: between.filter((row) => !mine.has(row.seq)).map((row) => ({ seq: row.seq, digest: contentDigest(row) })),
    },
  };
}

/** Offline: the checkpoint's signature, the fold to its head hash, and the report rebuilt from its rows. */
export function verifyEvidenceOffline(evidence: Evidence, publicKey: KeyObject): { ok: boolean; problems: string[] } {
  const problems: string[] = [];
  const proof = evidence.auditTrail.anchor;
  if (!proof)
    return {
      ok: false,
      problems: [`the report carries no signed checkpoint (${evidence.auditTrail.integrity.statement})`],
    };
  const checkpoint = checkpointSchema.safeParse(proof.checkpoint);
  if (!checkpoint.success) return { ok: false, problems: ['the checkpoint in the report is not a checkpoint'] };
  if (checkpoint.data.keyId !== keyIdOf(publicKey))
    problems.push(`the checkpoint names key ${checkpoint.data.keyId}; the public key given is ${keyIdOf(publicKey)}`);
  else if (!checkpointSignatureValid(checkpoint.data, publicKey))
    problems.push('the checkpoint signature does not verify: the checkpoint was altered or forged');

  const rows = [...proof.rows].sort((a, b) => a.seq - b.seq);
  const links = new Map(proof.links.map((l) => [l.seq, l.digest]));
  const bySeq = new Map(rows.map((r) => [r.seq, r]));
  let prev = rows[0]?.prevHash ?? '';
  for (let seq = rows[0]?.seq ?? 1; seq <= checkpoint.data.seq; seq++) {
    const row = bySeq.get(seq);
    const digest = links.get(seq);
    if (row) {
      if (row.prevHash !== prev) {
        problems.push(`row seq ${seq} (${row.id}) does not follow the row before it`);
        break;
      }
      const hash = rowHash(prev, row);
      if (hash !== row.hash) {
        problems.push(`row seq ${seq} (${row.id}) does not match its hash: it was altered`);
        break;
      }
      prev = hash;
    } else if (digest !== undefined) prev = linkHash(prev, digest);
    else {
      problems.push(`the proof lacks seq ${seq}`);
      break;
    }
  }
  if (problems.length === 0 && prev !== checkpoint.data.headHash)
    problems.push(`the rows do not lead to the checkpoint's head hash at seq ${checkpoint.data.seq}`);

  // The report's claims must follow from its rows.
  if (rows.length > 0) {
    const rebuilt = buildEvidence(
      rows,
      { ok: true, rows: rows.at(-1)!.seq },
      {
        now: new Date(evidence.generatedAt),
        runId: evidence.runId,
      },
    );
    for (const key of [
      'request',
      'plan',
      'sla',
      'actions',
      'holds',
      'cancellation',
      'manualTasks',
      'milestones',
      'final',
    ] as const) {
      if (JSON.stringify(rebuilt[key]) !== JSON.stringify(evidence[key]))
        problems.push(`the report's "${key}" does not follow from its rows: the report was edited after it was built`);
    }
    const cited = [...evidence.actions.map((a) => [a.auditSeq, a.auditHash] as const)];
    for (const [seq, hash] of cited)
      if (bySeq.get(seq)?.hash !== hash)
        problems.push(`an action cites row seq ${seq}, which is not in the proof with that hash`);
  }
  return { ok: problems.length === 0, problems };
}
