/**
 * `npm run chaos -- [options]`: one chaos run against the sample as separate processes; prints
 * progress, then exactly one summary line, and exits non-zero on any failure (with the seed and the
 * saved history). See README.md in this folder.
 */
import { HelpRequested, parseArgs, USAGE } from './options.js';
import { runChaos } from './run.js';

// A closed pipe (`npm run chaos | head`) must not crash the run before it cleans up.
process.stdout.on('error', () => undefined);

let options;
try {
  options = parseArgs(process.argv.slice(2));
} catch (error) {
  if (error instanceof HelpRequested) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  process.stderr.write(`${(error as Error).message}\n\n${USAGE}`);
  process.exit(2);
}

const result = await runChaos(options);
const c = result.checks;
const lines: string[] = [];
lines.push(`faults injected: ${Object.entries(result.faults).map(([k, v]) => `${k}=${v}`).join(' ') || 'none'}; node starts ${result.nodeStarts}`);
const n = result.network;
lines.push(`network: ${n.messages} messages through the proxies, ${n.delayed} delayed, ${n.dropped} dropped, ${n.duplicated} duplicated, ${n.blackholed} blackholed, ${n.targetDown} to a dead node${n.forgedAcks ? `, ${n.forgedAcks} FORGED acks` : ''}`);
if (options.failpoints) lines.push(`failpoint kills: ${Object.entries(result.failpointKills).map(([k, v]) => `${k}=${v}`).join(' ')}`);
if (c) {
  lines.push(
    `outcomes: ${c.outcomes.ok} ok, ${c.outcomes.fail} failed, ${c.outcomes.unknown} unknown; committed log ${c.logAgreement.committedIndex} entries (lowest final commit ${c.logAgreement.lowestFinalCommit}), ${c.logAgreement.incarnationsCompared} stores compared; ${c.deduplicatedRetries} retried commands deduplicated by sessions; ${c.votes.termsChecked} terms of votes audited`,
  );
}
if (c) {
  const sn = c.snapshots;
  lines.push(
    `snapshots (SNAPSHOT_EVERY=${result.options.snapshotEvery || 'off'}, ${result.options.snapshotTrailing} trailing entries): ${sn.taken} taken, ${sn.installed} installed from a leader (${result.installLines} "installed" log lines); ${sn.verified} stored snapshots match the replay of the committed log; ` +
      `largest final log ${sn.maxStoredEntries} entries${sn.storedBound ? ` (bound ${sn.storedBound})` : ''}; ${c.logAgreement.fromShadowsOnly} committed entries compacted everywhere, checked from the shadows; ${c.logAgreement.copiesCompared} copies of committed entries compared`,
  );
}
if (result.learners) {
  const l = result.learners;
  for (const line of l.lines) lines.push(`learner: ${line}`);
  lines.push(
    `learners: ${l.added} added, ${l.promoted} promoted, ${l.removed} removed; ${l.caughtUp} caught up (${l.viaSnapshot} empty ones through InstallSnapshot), the slowest in ${l.slowestCatchUpS.toFixed(2)} s; ` +
      `${l.polls} /cluster answers of learners, ${l.problems.length} problems; ${l.incarnations} learner stores' vote audits checked (${l.votesForOthers} votes for other candidates)`,
  );
}
if (result.rolling) {
  for (const r of result.rolling.restarts) lines.push(`restart: ${r}`);
  for (const s of result.rolling.stalls) lines.push(`stall: ${s}`);
  lines.push(
    `rolling restarts: ${result.rolling.ops} operations during the phase, ${result.rolling.failed} failed, ${result.rolling.refused} refused connections rerouted, slowest success ${(result.rolling.slowestMs / 1000).toFixed(2)} s`,
  );
}
if (c) lines.push(`answers: ${Object.entries(c.statuses).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}×${v}`).join(', ')}`);
if (result.fullyHealedInS !== undefined) lines.push(`every node back in and caught up ${result.fullyHealedInS.toFixed(2)} s after the faults stopped`);
for (const l of lines) console.log(l);
if (!result.ok) {
  console.log('FAILED:');
  for (const f of result.failures) console.log(`  - ${f}`);
  console.log(`seed ${result.seed}; history saved in ${result.historyPath ?? '(not saved)'}`);
} else if (result.historyPath) console.log(`history saved in ${result.historyPath}`);
console.log(result.summary);
process.exit(result.ok ? 0 : 1);
