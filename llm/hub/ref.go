// Package hub fetches model files from the Hugging Face Hub (or any server
// with the same URL layout) into a local cache, so that a model can be named
// by reference, hf://OWNER/REPO[@REVISION]/FILE, wherever a path is accepted.
//
// Downloads resume after a cut (a .part file and an HTTP Range request), are
// checked against the size and, when the server gives one, the sha256 the hub
// publishes for LFS files, and only reach their final name by an atomic
// rename once they are complete and verified.
package hub

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Scheme is the prefix of a model reference.
const Scheme = "hf://"

// DefaultRevision is the branch a reference without @REVISION names.
const DefaultRevision = "main"

// Ref names one file of one repository at one revision.
type Ref struct {
	Owner, Repo string
	Revision    string // branch, tag or commit; DefaultRevision when omitted
	File        string // path inside the repository, may contain '/'
}

// IsRef reports whether s is written as a hub reference (it may still fail
// to parse); anything else is taken for a local path.
func IsRef(s string) bool { return strings.HasPrefix(s, Scheme) }

// ParseRef parses hf://OWNER/REPO/FILE or hf://OWNER/REPO@REVISION/FILE.
func ParseRef(s string) (Ref, error) {
	bad := func(why string) (Ref, error) {
		return Ref{}, fmt.Errorf("%w %q: %s (want %sOWNER/REPO/FILE.gguf or %sOWNER/REPO@REVISION/FILE.gguf)", ErrBadRef, s, why, Scheme, Scheme)
	}
	if !IsRef(s) {
		return bad("does not start with " + Scheme)
	}
	parts := strings.SplitN(strings.TrimPrefix(s, Scheme), "/", 3)
	if len(parts) < 3 || parts[2] == "" {
		return bad("no file")
	}
	r := Ref{Owner: parts[0], Repo: parts[1], Revision: DefaultRevision, File: parts[2]}
	if i := strings.IndexByte(r.Repo, '@'); i >= 0 {
		r.Repo, r.Revision = r.Repo[:i], r.Repo[i+1:]
		if r.Revision == "" {
			return bad("empty revision after @")
		}
	}
	// The parts become directories of the cache: nothing may climb out of
	// it or be read as an absolute path.
	for _, seg := range []struct{ name, v string }{{"owner", r.Owner}, {"repo", r.Repo}, {"revision", r.Revision}} {
		if !validSegment(seg.v) {
			return bad(fmt.Sprintf("invalid %s %q", seg.name, seg.v))
		}
	}
	for _, seg := range strings.Split(r.File, "/") {
		if !validSegment(seg) {
			return bad(fmt.Sprintf("invalid file path %q", r.File))
		}
	}
	return r, nil
}

func validSegment(s string) bool {
	if s == "" || s == "." || s == ".." {
		return false
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f || c == '\\' || c == '/' {
			return false
		}
	}
	return true
}

// String writes the reference back, omitting the default revision.
func (r Ref) String() string {
	rev := ""
	if r.Revision != DefaultRevision {
		rev = "@" + r.Revision
	}
	return Scheme + r.Owner + "/" + r.Repo + rev + "/" + r.File
}

// EnvCache overrides the cache directory.
const EnvCache = "SELFINSTRUCT_CACHE"

// EnvEndpoint overrides the hub's base URL, as it does for huggingface_hub.
const EnvEndpoint = "HF_ENDPOINT"

// EnvToken is the access token for gated and private repositories, sent as
// a Bearer token.
const EnvToken = "HF_TOKEN"

// DefaultEndpoint is the public hub.
const DefaultEndpoint = "https://huggingface.co"

// DefaultCacheDir is $SELFINSTRUCT_CACHE, else the user's cache directory
// plus "selfinstruct".
func DefaultCacheDir() (string, error) {
	if d := os.Getenv(EnvCache); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory (set %s): %w", EnvCache, err)
	}
	return filepath.Join(d, "selfinstruct"), nil
}

// DefaultEndpointURL is $HF_ENDPOINT, else DefaultEndpoint.
func DefaultEndpointURL() string {
	if e := os.Getenv(EnvEndpoint); e != "" {
		return e
	}
	return DefaultEndpoint
}

// CachePath is where ref lives under the cache directory:
// DIR/hf/OWNER/REPO/REVISION/FILE. Revisions are kept apart because a branch
// and a commit may hold different files under the same name.
func CachePath(cacheDir string, ref Ref) string {
	return filepath.Join(cacheDir, "hf", ref.Owner, ref.Repo, ref.Revision, filepath.FromSlash(ref.File))
}

// ErrBadRef is wrapped by ParseRef's errors.
var ErrBadRef = errors.New("invalid model reference")

// ErrNotFound is wrapped when the server has no such file (404).
var ErrNotFound = errors.New("not found on the hub")

// ErrAccess is wrapped when the server refuses access (401, 403).
var ErrAccess = errors.New("access denied by the hub")

// ErrIntegrity is wrapped when a download does not match its announced size
// or sha256.
var ErrIntegrity = errors.New("download failed its integrity check")
