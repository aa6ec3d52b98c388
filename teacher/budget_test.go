package teacher

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// The test model costs $1 per 1M input and $2 per 1M output tokens, so
// costs are easy to write down.
func budgetPrices() Prices { return Prices{"test-model": {Input: 1, Output: 2}} }

func budgetTeacher(t *testing.T, handler func(w http.ResponseWriter, r *http.Request, body map[string]any)) *OpenAI {
	srv := serve(t, handler)
	o, _ := newTestTeacher(t, srv.URL+"/v1", func(c *OpenAIConfig) { c.Model = "test-model" })
	return o
}

// request is estimated at 4 prompt tokens (16 characters) + 4 overhead +
// 100_000 max tokens: worst case 8e-6 + 0.2 = $0.200008.
func budgetRequest() Request {
	return Request{Mode: ModeChat, Messages: []Message{{Role: "user", Content: "0123456789abcdef"}}, MaxTokens: 100_000}
}

const budgetWorstCase = 0.200008

func TestBudgetForwardsAndSettlesTheActualCost(t *testing.T) {
	var calls counter
	o := budgetTeacher(t, func(w http.ResponseWriter, r *http.Request, body map[string]any) {
		calls.hit()
		writeChat(w, "ok", 1000, 2000) // $0.001 + $0.004
	})
	b := WithBudget(o, 1.0, budgetPrices(), 0.25)
	if err := b.Validate(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := b.Complete(context.Background(), budgetRequest()); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := b.Spent(), 0.25+2*0.005; math.Abs(got-want) > 1e-12 {
		t.Errorf("spent = %v, want %v", got, want)
	}
	if got, want := b.Remaining(), 1.0-0.26; math.Abs(got-want) > 1e-12 {
		t.Errorf("remaining = %v, want %v (nothing left reserved)", got, want)
	}
	if b.Model() != "test-model" || calls.count() != 2 {
		t.Errorf("model %q, calls %d", b.Model(), calls.count())
	}
}

func TestBudgetRefusesWhatCouldOverspend(t *testing.T) {
	var calls counter
	o := budgetTeacher(t, func(w http.ResponseWriter, r *http.Request, body map[string]any) {
		calls.hit()
		writeChat(w, "ok", 1, 1)
	})
	// Spent 0.85 of 1.0: the worst case of 0.200008 does not fit.
	b := WithBudget(o, 1.0, budgetPrices(), 0.85)
	_, err := b.Complete(context.Background(), budgetRequest())
	if !errors.Is(err, ErrBudget) {
		t.Fatalf("err = %v, want ErrBudget", err)
	}
	if !strings.Contains(err.Error(), "limit $1.0000") {
		t.Errorf("error %q should state the limit", err)
	}
	if calls.count() != 0 {
		t.Errorf("a refused request reached the server")
	}
	// A smaller request still fits.
	small := budgetRequest()
	small.MaxTokens = 1000
	if _, err := b.Complete(context.Background(), small); err != nil {
		t.Errorf("small request: %v", err)
	}
}

func TestBudgetReservesWorstCaseWhileInFlight(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 10)
	o := budgetTeacher(t, func(w http.ResponseWriter, r *http.Request, body map[string]any) {
		arrived <- struct{}{}
		<-release
		writeChat(w, "ok", 10, 10)
	})
	// Room for two worst cases, not three.
	b := WithBudget(o, 2.5*budgetWorstCase, budgetPrices(), 0)

	var wg sync.WaitGroup
	results := make(chan error, 5)
	for range 2 {
		wg.Go(func() {
			_, err := b.Complete(context.Background(), budgetRequest())
			results <- err
		})
	}
	<-arrived
	<-arrived
	// Both are in flight with nothing settled yet: the third must be refused.
	if _, err := b.Complete(context.Background(), budgetRequest()); !errors.Is(err, ErrBudget) {
		t.Errorf("third concurrent request: err = %v, want ErrBudget", err)
	}
	close(release)
	wg.Wait()
	close(results)
	for err := range results {
		if err != nil {
			t.Errorf("in-flight request: %v", err)
		}
	}
	if got, want := b.Spent(), 2*(10+20)/1e6; math.Abs(got-want) > 1e-12 {
		t.Errorf("spent = %v, want %v", got, want)
	}
	// Settled, the reservations are gone and another request fits again.
	if _, err := b.Complete(context.Background(), budgetRequest()); err != nil {
		t.Errorf("after settling: %v", err)
	}
}

func TestBudgetFailedRequestsReleaseTheirReservation(t *testing.T) {
	o := budgetTeacher(t, func(w http.ResponseWriter, r *http.Request, body map[string]any) {
		writeAPIError(w, http.StatusBadRequest, "invalid_request_error", nil, "nope")
	})
	b := WithBudget(o, 1, budgetPrices(), 0)
	if _, err := b.Complete(context.Background(), budgetRequest()); !errors.Is(err, ErrRejected) {
		t.Fatalf("err = %v, want the teacher's ErrRejected", err)
	}
	if b.Spent() != 0 || b.Remaining() != 1 {
		t.Errorf("spent %v, remaining %v; want 0 and 1", b.Spent(), b.Remaining())
	}
}

func TestBudgetThatCannotWork(t *testing.T) {
	o := budgetTeacher(t, func(w http.ResponseWriter, r *http.Request, body map[string]any) {
		writeChat(w, "ok", 1, 1)
	})
	if err := WithBudget(o, 1, Prices{"other": {1, 1}}, 0).Validate(); err == nil || !strings.Contains(err.Error(), "no price known") {
		t.Errorf("unpriced model: err = %v", err)
	}
	if err := WithBudget(o, 0, budgetPrices(), 0).Validate(); err == nil {
		t.Error("zero limit: want an error")
	}
	if err := WithBudget(o, math.NaN(), budgetPrices(), 0).Validate(); err == nil {
		t.Error("NaN limit: want an error")
	}
	if err := WithBudget(o, 1, budgetPrices(), -1).Validate(); err == nil {
		t.Error("negative spent: want an error")
	}
	unbounded := budgetRequest()
	unbounded.MaxTokens = 0
	if _, err := WithBudget(o, 1, budgetPrices(), 0).Complete(context.Background(), unbounded); err == nil || !strings.Contains(err.Error(), "MaxTokens") {
		t.Errorf("no MaxTokens: err = %v", err)
	}
}
