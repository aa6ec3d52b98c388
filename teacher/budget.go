package teacher

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
)

// Budgeted is a Teacher that stops spending at a limit. Each request
// reserves its worst-case cost while in flight, so concurrent requests
// cannot together overshoot, and settles to the billed cost afterwards.
type Budgeted struct {
	teacher Teacher
	max     float64
	prices  Prices

	mu       sync.Mutex
	spent    float64
	reserved float64
}

// WithBudget wraps t so that the total cost stays within maxCost USD, with
// spent USD already counted (what a resumed run had spent before).
func WithBudget(t Teacher, maxCost float64, prices Prices, spent float64) *Budgeted {
	return &Budgeted{teacher: t, max: maxCost, prices: prices, spent: spent}
}

// Validate reports a budget that cannot work: a limit that is not a
// positive number, or a model with no price to count against it. The CLI
// calls it before starting; Complete also refuses in these cases.
func (b *Budgeted) Validate() error {
	if math.IsNaN(b.max) || math.IsInf(b.max, 0) || b.max <= 0 {
		return fmt.Errorf("budget: limit must be a positive number of USD, got %v", b.max)
	}
	if spent := b.Spent(); math.IsNaN(spent) || spent < 0 {
		return fmt.Errorf("budget: amount already spent must not be negative, got %v", spent)
	}
	if _, ok := b.prices.Lookup(b.teacher.Model()); !ok {
		return fmt.Errorf("budget: no price known for model %q; give a price file or --price-input/--price-output", b.teacher.Model())
	}
	return nil
}

// Model names the wrapped teacher's model.
func (b *Budgeted) Model() string { return b.teacher.Model() }

// Spent is the cost settled so far, including the starting amount.
func (b *Budgeted) Spent() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.spent
}

// Remaining is what is left after settled costs and in-flight reservations.
func (b *Budgeted) Remaining() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.max - b.spent - b.reserved
}

// Complete forwards req if its worst case fits the budget, and otherwise
// returns an error wrapping ErrBudget without sending anything.
func (b *Budgeted) Complete(ctx context.Context, req Request) (Response, error) {
	if err := b.Validate(); err != nil {
		return Response{}, err
	}
	if req.MaxTokens <= 0 {
		return Response{}, errors.New("budget: request has no MaxTokens, so its worst-case cost is unbounded")
	}
	model := b.teacher.Model()
	worst, _ := b.prices.Cost(model, worstCaseUsage(req))

	b.mu.Lock()
	if b.spent+b.reserved+worst > b.max {
		spent, reserved := b.spent, b.reserved
		b.mu.Unlock()
		return Response{}, fmt.Errorf("%w: this request could cost up to $%.4f; spent $%.4f, $%.4f reserved in flight, limit $%.4f",
			ErrBudget, worst, spent, reserved, b.max)
	}
	b.reserved += worst
	b.mu.Unlock()

	resp, err := b.teacher.Complete(ctx, req)

	actual := 0.0
	if err == nil {
		// The answering model may be a dated snapshot with its own price.
		if cost, ok := b.prices.Cost(resp.Model, resp.Usage); ok {
			actual = cost
		} else {
			actual, _ = b.prices.Cost(model, resp.Usage)
		}
	}
	b.mu.Lock()
	b.reserved -= worst
	b.spent += actual
	b.mu.Unlock()
	return resp, err
}
