// Cutting a pick into jobs that fit the server's limits (GET /limits), as `posterq submit` does.

// Posters per job from this page, at most: results appear job by job, so a big folder shows its
// first results early instead of after the last poster.
export const POSTERS_PER_JOB = 200;
// What one multipart part costs beyond the file's bytes (boundary, headers), generously.
const PART_BYTES = 512;
const REQUEST_BYTES = 1024;

function partBytes(poster) {
  return poster.file.size + PART_BYTES + 3 * poster.name.length;
}

/**
 * {jobs: [[poster, ...], ...], refused: [poster, ...]}: posters over the per-poster limit (or
 * too big for any request) are refused here, before any byte is sent.
 */
export function plan(posters, limits) {
  const perJob = Math.max(1, Math.min(limits.max_posters_per_job, POSTERS_PER_JOB));
  const jobs = [];
  const refused = [];
  let current = [];
  let bytes = REQUEST_BYTES;
  for (const poster of posters) {
    const size = partBytes(poster);
    if (poster.file.size > limits.max_file_bytes || REQUEST_BYTES + size > limits.max_request_bytes) {
      refused.push(poster);
      continue;
    }
    if (current.length && (current.length >= perJob || bytes + size > limits.max_request_bytes)) {
      jobs.push(current);
      current = [];
      bytes = REQUEST_BYTES;
    }
    current.push(poster);
    bytes += size;
  }
  if (current.length) jobs.push(current);
  return { jobs, refused };
}
