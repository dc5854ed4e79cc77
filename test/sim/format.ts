import { formatConfiguration } from '../../lib/core/configuration.js';
import type { Entry, HardState, Message, Ready } from '../../lib/core/types.js';
import { decodeCommand, formatCommand } from './kv.js';

/** Human-readable, one-line forms of the engine's data, for `--trace`. */

/** Virtual µs as right-aligned milliseconds: `   1234.567`. */
export function formatTime(us: number): string {
  return (us / 1000).toFixed(3).padStart(10);
}

export function formatEntry(entry: Entry): string {
  const at = `${entry.index}/${entry.term}`;
  switch (entry.type) {
    case 'noop':
      return `${at} noop`;
    case 'config':
      return `${at} config ${formatConfiguration(entry.config)}`;
    case 'command':
      try {
        return `${at} ${formatCommand(decodeCommand(entry.command))}`;
      } catch {
        return `${at} <${entry.command.byteLength} bytes>`;
      }
  }
}

const MAX_LISTED = 3;

export function formatEntries(entries: readonly Entry[]): string {
  if (entries.length === 0) return '[]';
  const shown = entries.slice(0, MAX_LISTED).map(formatEntry);
  if (entries.length > MAX_LISTED) shown.push(`… ${entries.length - MAX_LISTED} more up to ${entries.at(-1)!.index}`);
  return `[${shown.join(', ')}]`;
}

export function formatMessage(m: Message): string {
  switch (m.type) {
    case 'AppendEntries':
      return `AppendEntries t${m.term} prev=${m.prevLogIndex}/${m.prevLogTerm} commit=${m.leaderCommit} ${formatEntries(m.entries)}`;
    case 'AppendEntriesResponse':
      return m.success
        ? `AppendEntriesResponse t${m.term} ok match=${m.matchIndex}`
        : `AppendEntriesResponse t${m.term} reject prev=${m.rejectedIndex} hint=${m.conflictTerm}@${m.conflictIndex}`;
    case 'RequestVote':
      return `${m.preVote ? 'PreVote' : 'RequestVote'} t${m.term} last=${m.lastLogIndex}/${m.lastLogTerm}`;
    case 'RequestVoteResponse':
      return `${m.preVote ? 'PreVoteResponse' : 'RequestVoteResponse'} t${m.term} ${m.voteGranted ? 'granted' : 'denied'}`;
    case 'TimeoutNow':
      return `TimeoutNow t${m.term}`;
    case 'InstallSnapshot':
      return `InstallSnapshot t${m.term} snapshot=${m.snapshot.index}/${m.snapshot.term} ${formatConfiguration(m.snapshot.configuration)}`;
    case 'InstallSnapshotResponse':
      return `InstallSnapshotResponse t${m.term} match=${m.matchIndex}`;
  }
}

export function formatHardState(hs: HardState): string {
  return `{term ${hs.term}, vote ${hs.vote ? `n${hs.vote}` : '-'}, commit ${hs.commit}}`;
}

/** What a Ready asks to write: `hs={…} truncate≥7 +3 (7..9)`. */
export function formatWrite(ready: Ready): string {
  const parts: string[] = [];
  if (ready.hardState) parts.push(`hard state ${formatHardState(ready.hardState)}`);
  if (ready.truncateFrom !== undefined) parts.push(`truncate from ${ready.truncateFrom}`);
  if (ready.snapshot) parts.push(`snapshot ${ready.snapshot.index}/${ready.snapshot.term} (log now starts after it)`);
  if (ready.entries.length > 0) {
    const first = ready.entries[0]!.index;
    const last = ready.entries.at(-1)!.index;
    parts.push(`append ${first === last ? `${first}` : `${first}..${last}`}`);
  }
  return parts.join(', ');
}
