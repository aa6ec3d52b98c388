package teacher

import "errors"

// Sentinel errors the CLI maps to exit codes. Every error a Teacher in this
// package gives up with wraps one of these or a context error, so callers can
// tell "stop the run" apart from "skip this request" with errors.Is.
var (
	// ErrUnavailable means the teacher cannot serve us at all: the server is
	// unreachable, the API key was rejected, the account is out of quota, or
	// the server kept failing until the attempts ran out. Continuing the run
	// would only fail the same way.
	ErrUnavailable = errors.New("teacher unavailable")

	// ErrRejected means the API refused this particular request (400, 404,
	// 422 ...): retrying it unchanged cannot succeed, but other requests may.
	ErrRejected = errors.New("teacher rejected the request")

	// ErrBadResponse means the server kept answering with bodies that could
	// not be used (undecodable JSON, no choices, choices not matching the
	// prompts) until the attempts ran out.
	ErrBadResponse = errors.New("teacher returned unusable responses")

	// ErrBudget means a request was refused because its worst-case cost
	// would take the run past its spending limit.
	ErrBudget = errors.New("teacher budget exhausted")
)
