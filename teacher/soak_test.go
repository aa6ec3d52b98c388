package teacher

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/selfinstruct/selfinstruct/teacher/openaitest"
)

// TestSoakAgainstFaultyServer runs many concurrent batched requests against
// a server that injects every fault a long run meets, and checks that each
// request still succeeds with its choices in prompt order, that every fault
// was retried exactly once under the right cause, and that the usage summed
// equals what the server billed.
func TestSoakAgainstFaultyServer(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test")
	}
	srv := openaitest.New(openaitest.Options{
		Respond: func(c openaitest.Call) openaitest.Reply {
			return openaitest.Reply{Text: "answer to " + c.Prompt}
		},
		Faults: openaitest.Faults{
			RateLimit: 0.04, ServerErr: 0.04, Malformed: 0.04, Drop: 0.04, Slow: 0.04,
			SlowDelay:  20 * time.Millisecond,
			RetryAfter: 10 * time.Millisecond,
		},
		Seed:   7,
		APIKey: testKey,
	})
	defer srv.Close()

	o, _ := newTestTeacher(t, srv.BaseURL(), func(c *OpenAIConfig) {
		c.Model = "gpt-3.5-turbo-instruct"
		c.MaxAttempts = 12
		c.MaxConcurrent = 8
		// Generous: a timed-out attempt may still be billed by the server,
		// which would break the exact usage check; timeouts have their own test.
		c.Timeout = 30 * time.Second
	})
	const requests = 150
	var wg sync.WaitGroup
	for i := range requests {
		wg.Go(func() {
			prompts := []string{fmt.Sprintf("r%d-p0", i), fmt.Sprintf("r%d-p1", i), fmt.Sprintf("r%d-p2", i)}
			resp, err := o.Complete(context.Background(), Request{Mode: ModeCompletion, Prompts: prompts, MaxTokens: 64, Temperature: 1})
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			for j, c := range resp.Choices {
				if c.Text != "answer to "+prompts[j] {
					t.Errorf("request %d choice %d = %q, want the answer to %q", i, j, c.Text, prompts[j])
				}
			}
		})
	}
	wg.Wait()
	// The server bills a response after writing it, so the client can have
	// it before the bill is written; Close waits for the handlers to finish.
	srv.Close()

	prompt, completion := srv.Served()
	if got, want := o.Usage(), (Usage{int64(prompt), int64(completion)}); got != want {
		t.Errorf("usage = %+v, server billed %+v", got, want)
	}
	faults := srv.FaultCounts()
	st := o.Stats()
	for fault, cause := range map[string]RetryCause{
		"rate_limit": CauseRateLimited, "server_error": CauseServerError, "malformed": CauseMalformed, "drop": CauseConnection,
	} {
		if faults[fault] == 0 {
			t.Errorf("the server injected no %s faults; the soak proves nothing about them", fault)
		}
		if st.Retries[cause] != int64(faults[fault]) {
			t.Errorf("%s: %d injected, %d retried as %s", fault, faults[fault], st.Retries[cause], cause)
		}
	}
	if st.Succeeded != requests || st.Failed != 0 {
		t.Errorf("stats = %+v", st)
	}
	t.Logf("faults %v, retries %v, attempts %d, limiter waits %d (%v)", faults, st.Retries, st.Attempts, st.RateLimitWaits, st.RateLimitWaited)
}
