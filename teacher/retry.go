package teacher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	openai "github.com/sashabaranov/go-openai"
)

// maxRetryAfter caps how long a server's Retry-After can stall one request:
// a far-off HTTP date (a daily quota, a misconfigured proxy) should end the
// request, not freeze an overnight run.
const maxRetryAfter = 10 * time.Minute

// maxBodyInError bounds how much of a non-JSON error body goes into messages.
const maxBodyInError = 200

type classifyInput struct {
	sent        bool
	status      int
	header      http.Header
	bodyReadErr error
	timedOut    bool
}

// classify decides whether a failed attempt is worth retrying.
func (o *OpenAI) classify(ctx context.Context, err error, in classifyInput) *outcome {
	if ctx.Err() != nil {
		return &outcome{fatal: fmt.Errorf("teacher: request stopped: %w", ctx.Err())}
	}
	detail := o.redact(err.Error())
	if !in.sent {
		// go-openai refused the request before any HTTP happened (a model it
		// knows cannot take these parameters, for instance).
		return &outcome{fatal: fmt.Errorf("%w: not sent for model %q: %s", ErrRejected, o.cfg.Model, detail)}
	}
	if in.timedOut {
		return &outcome{cause: CauseTimeout, status: in.status, detail: fmt.Sprintf("no answer within %s", o.cfg.Timeout)}
	}

	var apiErr *openai.APIError
	var reqErr *openai.RequestError
	switch {
	case errors.As(err, &apiErr):
		detail = o.redact(describeAPIError(apiErr))
		return o.classifyStatus(apiErr.HTTPStatusCode, apiErrorCode(apiErr), detail, in.header)
	case errors.As(err, &reqErr):
		detail = describeRequestError(reqErr, o.redact)
		return o.classifyStatus(reqErr.HTTPStatusCode, "", detail, in.header)
	case errors.Is(err, errNoChoices):
		return &outcome{cause: CauseNoChoices, status: in.status, detail: detail}
	case errors.Is(err, errMalformed):
		return &outcome{cause: CauseMalformed, status: in.status, detail: detail}
	}

	if in.status != 0 {
		// The server answered with a success status but the body failed: cut
		// off part way (a connection problem) or not JSON at all.
		if in.bodyReadErr != nil {
			return &outcome{cause: CauseConnection, status: in.status, detail: "connection dropped while reading the response: " + o.redact(in.bodyReadErr.Error())}
		}
		if isDecodeError(err) {
			return &outcome{cause: CauseMalformed, status: in.status, detail: "undecodable response body: " + detail}
		}
		return &outcome{cause: CauseConnection, status: in.status, detail: detail}
	}

	// No response at all: the connection failed.
	if isUnreachable(err) && !o.reachedServer.Load() {
		return &outcome{fatal: fmt.Errorf("%w: server unreachable at %s (check --base-url or %s): %s",
			ErrUnavailable, o.baseURLText, EnvBaseURL, detail)}
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return &outcome{cause: CauseTimeout, detail: detail}
	}
	return &outcome{cause: CauseConnection, detail: detail}
}

func (o *OpenAI) classifyStatus(status int, code, detail string, header http.Header) *outcome {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return &outcome{fatal: fmt.Errorf("%w: the API key was rejected by %s (%s); check %s",
			ErrUnavailable, o.baseURLText, detail, EnvAPIKey)}
	case status == http.StatusTooManyRequests && code == "insufficient_quota":
		// OpenAI answers 429 for an exhausted account too; no wait fixes that.
		return &outcome{fatal: fmt.Errorf("%w: the account has no quota left at %s (%s)", ErrUnavailable, o.baseURLText, detail)}
	case status == http.StatusTooManyRequests:
		return &outcome{cause: CauseRateLimited, status: status, detail: detail, retryAfter: o.retryAfter(header)}
	case status >= 500 || status == http.StatusRequestTimeout || status == http.StatusConflict:
		return &outcome{cause: CauseServerError, status: status, detail: detail, retryAfter: o.retryAfter(header)}
	case status == http.StatusNotFound:
		return &outcome{fatal: fmt.Errorf("%w: %s has no model %q or no such endpoint (%s); check --model, and --base-url (it usually ends in /v1)",
			ErrRejected, o.baseURLText, o.cfg.Model, detail)}
	default:
		return &outcome{fatal: fmt.Errorf("%w: %s refused the request (%s)", ErrRejected, o.baseURLText, detail)}
	}
}

// retryAfter reads how long the server asked us to wait: retry-after-ms
// (OpenAI's precise form) before Retry-After in seconds or as an HTTP date.
func (o *OpenAI) retryAfter(h http.Header) time.Duration {
	d, ok := parseRetryAfter(h, time.Now())
	if !ok {
		return 0
	}
	if d > maxRetryAfter {
		o.log.Warn("server asked for a long wait before retrying; capping it", "retry_after", d, "capped_to", maxRetryAfter)
		d = maxRetryAfter
	}
	return d
}

func parseRetryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	if h == nil {
		return 0, false
	}
	if v := strings.TrimSpace(h.Get("retry-after-ms")); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms >= 0 {
			return time.Duration(ms * float64(time.Millisecond)), true
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil && secs >= 0 {
		return time.Duration(secs * float64(time.Second)), true
	}
	if at, err := http.ParseTime(v); err == nil {
		// A date already past means "now"; a tiny positive wait keeps the
		// caller from mistaking it for "no Retry-After".
		return max(at.Sub(now), time.Millisecond), true
	}
	return 0, false
}

// backoff is the full-jitter exponential delay after the given attempt.
func (o *OpenAI) backoff(attempt int) time.Duration {
	ceiling := o.cfg.MaxBackoff
	if shift := attempt - 1; shift < 32 {
		if d := o.cfg.BaseBackoff << shift; d > 0 && d < ceiling {
			ceiling = d
		}
	}
	return rand.N(ceiling + 1)
}

func (o *OpenAI) exhausted(attempts int, last *outcome) error {
	sentinel := ErrUnavailable
	if last.cause == CauseMalformed || last.cause == CauseNoChoices {
		sentinel = ErrBadResponse
	}
	return fmt.Errorf("%w: gave up after %d attempts at %s; last failure (%s): %s",
		sentinel, attempts, o.baseURLText, last.cause, last.detail)
}

// redact removes the API key from text that may echo it: servers quote a
// bad key back in their 401 messages, and proxies echo request headers.
func (o *OpenAI) redact(s string) string {
	if o.cfg.APIKey == "" {
		return s
	}
	return strings.ReplaceAll(s, o.cfg.APIKey, "[REDACTED]")
}

// redactURLText strips credentials from a URL that may not even parse.
func redactURLText(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	if at := strings.LastIndex(raw, "@"); at >= 0 {
		return "[REDACTED]@" + raw[at+1:]
	}
	return raw
}

func describeAPIError(e *openai.APIError) string {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP %d", e.HTTPStatusCode)
	if e.Type != "" {
		fmt.Fprintf(&b, " %s", e.Type)
	}
	if code := apiErrorCode(e); code != "" && code != e.Type {
		fmt.Fprintf(&b, " %s", code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	return b.String()
}

func apiErrorCode(e *openai.APIError) string {
	switch c := e.Code.(type) {
	case string:
		return c
	case nil:
		return ""
	default:
		return fmt.Sprint(c)
	}
}

// describeRequestError redacts before truncating, so a cut cannot leave
// half a key behind.
func describeRequestError(e *openai.RequestError, redact func(string) string) string {
	body := strings.TrimSpace(redact(string(e.Body)))
	if len(body) > maxBodyInError {
		body = body[:maxBodyInError] + "..."
	}
	if body == "" {
		return fmt.Sprintf("HTTP %d with an empty body", e.HTTPStatusCode)
	}
	return fmt.Sprintf("HTTP %d: %s", e.HTTPStatusCode, body)
}

func isDecodeError(err error) bool {
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	return errors.As(err, &syntaxErr) || errors.As(err, &typeErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// isUnreachable reports errors that mean nothing listens at the address or
// the name does not resolve, as opposed to a connection that broke.
func isUnreachable(err error) bool {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return true
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return true
	}
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial" && !opErr.Timeout()
}
