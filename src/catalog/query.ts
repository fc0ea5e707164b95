/**
 * A listing query over the local index: filters, a sort and a limit, answered without holding
 * every experiment. The index lists newest first, so a plain listing reads only the rows it
 * shows; filters read the rows one at a time and keep those that match; another sort keeps each
 * match's sort value and reads the rows shown once it knows which they are.
 *
 * @module
 */
import {
  compareSortValues,
  type Filter,
  isCreatedSort,
  matches,
  type Sort,
  valueOf,
} from "./filter.ts";
import { type ExperimentRow, type IndexDb, LISTING_COLUMNS } from "./index_db.ts";
import {
  BASE_COLUMNS,
  type BaseColumn,
  type ExperimentView,
  type RowLoader,
  RowView,
} from "./views.ts";
import type { Visibility } from "./visibility.ts";

/** What to list. */
export interface QueryOptions {
  /** All must match. @default [] */
  filters?: Filter[];
  /** @default created, newest first */
  sort?: Sort;
  /** Most experiments to return (the first after filters and sort); null returns every one. */
  limit?: number | null;
  /** Only running experiments (`rep ps`). */
  running?: boolean;
  /**
   * false: the views returned hold only their ids and what filters and the sort read; anything
   * else is read from the index per view when used (for a list of ids). @default true
   */
  full?: boolean;
}

/** What a query found. */
export interface QueryResult {
  /** The experiments, in order, at most `limit`. */
  views: ExperimentView[];
  /** How many experiments match (before the limit). */
  matched: number;
  /** How many experiments are listed (not removed). */
  total: number;
}

/** The default sort: newest first. */
export const NEWEST_FIRST: Sort = { key: { kind: "field", name: "created" }, desc: true };

/** The columns filters and a sort read (others are read per row if used after all). */
function scanColumns(filters: Filter[], sort: Sort, running: boolean): string[] {
  const cols = new Set<string>(BASE_COLUMNS);
  const status = () => ["status", "heartbeat"].forEach((c) => cols.add(c));
  const metrics = () => ["best_brief", "latest_brief"].forEach((c) => cols.add(c));
  for (const key of [...filters.map((f) => f.key), sort.key]) {
    if (key.kind === "param") cols.add("params");
    else if (key.kind === "metric") {
      if (key.scope !== "any") metrics();
    } else if (key.name === "status" || key.name === "exit_code") status();
    else if (key.name === "step") metrics();
  }
  if (running) status();
  return [...cols];
}

/** Answer `options` from `db` (already refreshed), with statuses as of `now`. */
export function runQuery(
  db: IndexDb,
  vis: Visibility,
  now: number,
  load: RowLoader,
  options: QueryOptions,
): QueryResult {
  const filters = options.filters ?? [];
  const sort = options.sort ?? NEWEST_FIRST;
  const limit = options.limit ?? null;
  const running = options.running ?? false;
  const full = options.full ?? true;
  const view = (r: Pick<ExperimentRow, BaseColumn>) => new RowView(r, vis, now, load);
  const total = db.count();
  const inOrder = isCreatedSort(sort);
  // Every column when every row is returned in full; else what filters and the sort read, and
  // the rows returned are read again in full.
  const wide = full && limit === null;
  const rows = (max: number | null, columns: readonly string[]) =>
    db.listingRows({
      oldest: inOrder && !sort.desc,
      // A running experiment's newest attempt has no status yet: never a finished row.
      unfinished: running,
      limit: max,
      columns: columns as (keyof ExperimentRow)[],
    }) as IterableIterator<Pick<ExperimentRow, BaseColumn>>;
  const keep = (v: ExperimentView) =>
    (!running || v.status === "running") && filters.every((f) => matches(v, f));
  const complete = (views: ExperimentView[]) =>
    wide || !full ? views : views.map((v) => {
      const r = db.listingRow(v.id);
      return r ? view(r) : v;
    });

  if (inOrder && !filters.length && !running) {
    const views = Array.from(rows(limit, full ? LISTING_COLUMNS : BASE_COLUMNS), view);
    return { views, matched: total, total };
  }
  // Filters read every row: in storage order (sequential reads), then sorted as asked, ties
  // newest first.
  const columns = wide ? LISTING_COLUMNS : scanColumns(filters, sort, running);
  const hits: { value: unknown; view: ExperimentView }[] = [];
  const scan = db.listingRows({
    unordered: true,
    unfinished: running,
    columns: columns as (keyof ExperimentRow)[],
  }) as IterableIterator<Pick<ExperimentRow, BaseColumn>>;
  for (const r of scan) {
    const v = view(r);
    if (keep(v)) hits.push({ value: inOrder ? null : valueOf(v, sort.key), view: v });
  }
  hits.sort((a, b) => {
    if (inOrder && !sort.desc && a.view.created !== b.view.created) {
      return a.view.created < b.view.created ? -1 : 1;
    }
    return (inOrder ? 0 : compareSortValues(a.value, b.value, sort.desc)) ||
      newestFirst(a.view, b.view);
  });
  const shown = limit === null ? hits : hits.slice(0, limit);
  return { views: complete(shown.map((h) => h.view)), matched: hits.length, total };
}

/** The listing's own order: newest first, then by id descending. */
function newestFirst(a: ExperimentView, b: ExperimentView): number {
  if (a.created !== b.created) return a.created < b.created ? 1 : -1;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}
