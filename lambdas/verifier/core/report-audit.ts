import type { Report, StorageReport } from '../../../format/verification-report';
import { formatBytes } from '../../../runtime/byte-size';
import { esc, recoveryWindowChart, storageHistoryChart } from './report-pictures';

/**
 * The HTML of the report's answers to an auditor: per group, a table of each source's recovery
 * point, recovery time and copies per tier with the recovery window picture; then what the vault
 * stores and costs. Text stays short per cell so that the table reflows on a phone.
 */

type SourceReport = Report['sources'][number];

const h1 = (n: number) => n.toFixed(1);
const usd = (n: number) => `$${n.toFixed(2)}`;
const pct = (ratio: number) => `${ratio >= 0 ? '+' : ''}${Math.round(ratio * 100)}%`;
const miss = (text: string) => `<b class="miss">${text}</b>`;

function pointCell(s: SourceReport): string {
  const rp = s.recoveryPoint;
  if (!rp) return '-';
  const current = rp.current ? `newest restorable ${h1(rp.current.ageHours)} h ago (${rp.current.by === 'log' ? (rp.log?.kind === 'binlog' ? 'binary log' : 'WAL') : 'backup'})` : 'nothing restorable';
  const worst = rp.worstGap ? `worst gap in ${rp.windowDays} d: ${h1(rp.worstGap.hours)} h<div class="note">${esc(rp.worstGap.from.at)} to ${esc(rp.worstGap.to.at)}</div>` : `no gap in ${rp.windowDays} d`;
  const target = rp.misses.length ? miss(`RPO ${rp.rpoHours} h missed ${rp.misses.length}×`) : `RPO ${rp.rpoHours} h met`;
  return `${current}<div>${worst}</div><div>${target}</div>`;
}

function timeCell(s: SourceReport): string {
  const rt = s.recoveryTime;
  if (!rt) return '-';
  if (!rt.estimate) return `not estimated<div class="note">${esc(rt.note)}</div>${rt.rtoHours !== null ? `<div>RTO ${rt.rtoHours} h</div>` : ''}`;
  const e = rt.estimate;
  const target = rt.rtoHours === null ? 'no RTO set' : e.hours > rt.rtoHours ? miss(`over the ${rt.rtoHours} h RTO`) : `within the ${rt.rtoHours} h RTO`;
  const speed = rt.measured ? `<div class="note">drill ${esc(rt.measured.drill)}: ${esc(formatBytes(rt.measured.bytes))} in ${rt.measured.seconds.toFixed(1)} s (${esc(formatBytes(rt.measured.bytesPerSecond))}/s)${rt.measured.stages ? `; ${rt.measured.stages.decrypt === null ? `read (download and decryption) ${rt.measured.stages.download} s` : `download ${rt.measured.stages.download} s, decrypt ${rt.measured.stages.decrypt} s`}, load ${rt.measured.stages.load} s, checks ${rt.measured.stages.checks} s` : ''}</div>` : '';
  return `about ${e.hours < 0.1 ? '<0.1' : h1(e.hours)} h, ${esc(e.dominant)} dominates<div>${target}</div>${speed}<div class="note">${esc(rt.note)}</div>`;
}

function retentionCell(s: SourceReport): string {
  const r = s.retention;
  if (!r) return '-';
  const tiers = r.tiers
    .filter((t) => t.exist > 0 || t.promised)
    .map((t) => {
      const counted = t.promised === null ? `${t.exist} (no retention set)` : t.short ? miss(`${t.inWindow} kept, ${t.promised} promised`) : `${t.inWindow} kept, ${t.promised} promised`;
      const replica = t.replica ? (t.replica.holdsSame ? ', replica same' : `, replica ${miss(`${t.replica.replicated} of ${t.exist}`)}`) : '';
      return `<div>${esc(t.tier)} ${counted}${t.oldest ? `<span class="note"> since ${esc(t.oldest.finishedAt.slice(0, 10))}</span>` : ''}${replica}</div>`;
    })
    .join('');
  return `${tiers || 'no copies'}${r.oldestRestorable ? `<div class="note">oldest restorable ${esc(r.oldestRestorable.finishedAt.slice(0, 16))} (${esc(r.oldestRestorable.tier)})</div>` : ''}`;
}

/** A group's recovery table and picture; empty when no source of it has figures. */
export function recoverySection(report: Report, group: string): string {
  const rows = report.sources.filter((s) => s.group === group && (s.recoveryPoint || s.recoveryTime || s.retention));
  if (rows.length === 0) return '';
  const body = rows.map((s) => `<tr><td>${esc(s.host)} / ${esc(s.source)}</td><td>${pointCell(s)}</td><td>${timeCell(s)}</td><td>${retentionCell(s)}</td></tr>`).join('');
  return `<h3>Recovery: what can be restored, how fast, how many copies</h3><table class="list audit"><tr><th>source</th><th>recovery point</th><th>recovery time</th><th>copies per tier</th></tr>${body}</table><figure>${recoveryWindowChart(group, report)}<figcaption class="note">Recovery window by age (square-root axis): each tick a good copy, coloured by tier; green bands are point-in-time log replay ranges.</figcaption></figure>`;
}

function trendText(s: StorageReport, group: string): string {
  const g = s.trend.groups.find((x) => x.group === group);
  if (!g) return '';
  if (g.bytesThen === null) return `${esc(formatBytes(g.bytes))} (no snapshot from 30 days ago to compare)`;
  return g.change === null ? `${esc(formatBytes(g.bytes))}, new since ${esc((s.trend.since ?? '').slice(0, 10))}` : `${esc(formatBytes(g.bytes))}, ${pct(g.change)} since ${esc((s.trend.since ?? '').slice(0, 10))} (${esc(formatBytes(g.bytesThen ?? 0))})`;
}

/** An SDK error can run to several lines (a deserialisation hint); the JSON keeps it whole. */
const firstLine = (text: string) => text.split('\n')[0];

export function storageSection(report: Report): string {
  const s = report.storage;
  if (!s) return '';
  const groups = [...new Set(s.rows.map((r) => r.group))].sort((a, b) => (a === '(deployment)' ? 1 : b === '(deployment)' ? -1 : a.localeCompare(b)));
  const c = s.cost;
  const cost = c
    ? `<p><b>Estimated ${usd(c.total)} a month</b> in ${esc(s.region)}: storage ${usd(c.storage)}, requests ${usd(c.requests)}, transitions ${usd(c.transitions)}${c.monitoring ? `, monitoring ${usd(c.monitoring)}` : ''}${c.replication ? `, replication transfer ${usd(c.replication)}` : ''}.${s.trend.monthlyCost.change !== null ? ` ${pct(s.trend.monthlyCost.change)} against ${usd(s.trend.monthlyCost.then ?? 0)} on ${esc((s.trend.since ?? '').slice(0, 10))}.` : ''}</p>${c.unpriced.length ? `<p class="note">Not priced: ${c.unpriced.map((u) => `${esc(u.storageClass)} ${esc(formatBytes(u.bytes))}`).join(', ')}.</p>` : ''}`
    : '<p><b>No cost estimate</b>: no prices for this region.</p>';
  const rep = s.replica;
  const replicaGroups = rep?.rows.map((r) => r.group) ?? [];
  const perGroup = [...new Set([...groups, ...replicaGroups.filter((g) => !groups.includes(g))])]
    .map((g) => {
      const rows = s.rows.filter((r) => r.group === g);
      const replicaRows = rep?.rows.filter((r) => r.group === g) ?? [];
      const row = (r: (typeof rows)[number], where: string) => `<tr${where === 'replica' ? ' class="replica"' : ''}><td>${where}</td><td>${esc(r.tier)}</td><td>${esc(r.storageClass)}</td><td>${r.objects}</td><td>${esc(formatBytes(r.bytes))}</td></tr>`;
      const table = `<table class="list"><tr><th>bucket</th><th>tier</th><th>storage class</th><th>objects</th><th>bytes</th></tr>${rows.map((r) => row(r, 'data')).join('')}${replicaRows.map((r) => row(r, 'replica')).join('')}</table>`;
      const groupCost = c?.byGroup[g] !== undefined ? `; storage ${usd(c.byGroup[g])} a month` : '';
      const replicaBytes = replicaRows.reduce((n, r) => n + r.bytes, 0);
      const replicaCost = rep?.cost?.byGroup[g] !== undefined ? `, ${usd(rep.cost.byGroup[g])} a month` : '';
      const replicaText = replicaRows.length ? `; replica ${esc(formatBytes(replicaBytes))}${replicaCost}` : '';
      return `<h3>${g === '(deployment)' ? 'Reports and state' : `Group ${esc(g)}`}: ${trendText(s, g)}${groupCost}${replicaText}</h3>${g === '(deployment)' ? '' : storageHistoryChart(g, s.history, rep?.history)}${table}`;
    })
    .join('');
  const rc = rep?.cost;
  const replicaPart = !rep
    ? ''
    : !rep.listed
      ? `<p class="replica"><b>Offsite replica</b> s3://${esc(rep.bucket)} in ${esc(rep.region)}: not listed, ${esc(firstLine(rep.problem ?? 'no listing'))}; its storage and cost are not in these figures.</p>`
      : `<p class="replica"><b>Offsite replica</b> s3://${esc(rep.bucket)} in ${esc(rep.region)}: ${esc(formatBytes(rep.rows.reduce((n, r) => n + r.bytes, 0)))}${rc ? `, <b>estimated ${usd(rc.total)} a month</b>: storage ${usd(rc.storage)}, requests ${usd(rc.requests)}, transitions ${usd(rc.transitions)}${rc.monitoring ? `, monitoring ${usd(rc.monitoring)}` : ''}${c ? `; with the data bucket ${usd(Math.round((c.total + rc.total) * 100) / 100)} a month` : ''}` : ', no prices for its region'}.${rep.trend.monthlyCost.change !== null ? ` ${pct(rep.trend.monthlyCost.change)} against ${usd(rep.trend.monthlyCost.then ?? 0)} on ${esc((rep.trend.since ?? '').slice(0, 10))}.` : ''} <span class="note">Prices: ${esc(firstLine(rep.priceNote))}.</span></p>`;
  return `<h2>Storage and cost</h2>${cost}${replicaPart}<p class="note">Prices: ${esc(firstLine(s.priceNote))}. Requests a month (estimated): ${s.requests.tier1} PUT/LIST, ${s.requests.tier2} GET/HEAD; ${s.requests.assumptions.map(esc).join('; ')}.${s.replicaNote ? ` ${esc(s.replicaNote)}` : ''}</p>${perGroup}`;
}
