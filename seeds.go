// Package selfinstruct is the root of the selfinstruct module. It carries the
// data files that ship inside the binary, so that a bare `selfinstruct
// generate` works without any file next to it.
package selfinstruct

import _ "embed"

// SeedTasksJSONL is the project's own set of 175 human-written seed tasks in
// Self-Instruct's JSONL format; prompts.DefaultSeedTasks parses it.
//
//go:embed seed_tasks.jsonl
var SeedTasksJSONL []byte
