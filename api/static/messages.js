// What to do about an error: the API's code (or "unreachable") -> one sentence for a person.

import { formatBytes } from "./dom.js";

/** Advice for a failed request (an ApiError), given the server's limits when known. */
export function advice(error, limits) {
  const perJob = limits ? limits.max_posters_per_job.toLocaleString("en") : "the server's limit of";
  const request = limits ? formatBytes(limits.max_request_bytes) : "the server's limit";
  switch (error.code) {
    case "unreachable":
      return "Check that the service is running (make serve starts it) and that this page's address is right, then try again.";
    case "unavailable":
      return "The service cannot reach its job store (Redis). Try again in a minute; if it goes on, whoever runs the service should check Redis and the API's log.";
    case "request_too_large":
    case "too_many_posters":
      return `Pick fewer posters at once (at most ${perJob} posters and ${request} a request), or send the folder with posterq submit, which splits it.`;
    case "no_posters":
      return "Pick at least one poster.";
    case "missing_api_key":
      return "This server needs an API key: type the key whoever runs the service gave you into the API key field.";
    case "invalid_api_key":
      return "The server does not know this API key: check it in the API key field (no spaces), or ask whoever runs the service for one.";
    case "job_not_found":
      return "The job expired or was deleted on the server: pick the posters again.";
    case "not_found":
    case "method_not_allowed":
      return "This server does not offer that: it may run an older posterq than this page expects.";
    case "aborted":
      return "Pick the posters again to start over.";
    default:
      return "Try again; if it goes on, the API's log says more.";
  }
}

/** The local error of a poster refused before upload. */
export function refusedError(poster, limits) {
  return {
    code: "too_large",
    message: `${formatBytes(poster.file.size)} is over the server's limit of ${formatBytes(limits.max_file_bytes)} `
      + "per poster; it was not sent. Shrink it, or ask whoever runs the service to raise POSTERQ_MAX_FILE_BYTES.",
  };
}
