// Cutting a pick into jobs that fit the server's limits, as `posterq submit` does
// (posterq.chunking): every number comes from GET /limits, so the page and the CLI plan alike.

// Posters per job from this page, at most: results appear job by job, so a big folder shows its
// first results early instead of after the last poster. A choice of the page's, not a limit.
export const POSTERS_PER_JOB = 200;

/**
 * {jobs: [[poster, ...], ...], refused: [poster, ...]}: posters over the per-poster limit (or
 * too big for any request) are refused here, before any byte is sent.
 */
export function plan(posters, limits) {
  const perJob = Math.max(1, Math.min(limits.max_posters_per_job, POSTERS_PER_JOB));
  // A request's room for files, and what each file's part costs in it: posterq.chunking.plan_chunks.
  const budget = Math.max(1, limits.max_request_bytes - limits.request_overhead_bytes);
  const jobs = [];
  const refused = [];
  let current = [];
  let bytes = 0;
  for (const poster of posters) {
    const size = poster.file.size + limits.part_overhead_bytes;
    if (poster.file.size > limits.max_file_bytes || size > budget) {
      refused.push(poster);
      continue;
    }
    if (current.length && (current.length >= perJob || bytes + size > budget)) {
      jobs.push(current);
      current = [];
      bytes = 0;
    }
    current.push(poster);
    bytes += size;
  }
  if (current.length) jobs.push(current);
  return { jobs, refused };
}
