package teacher

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
)

// Price is what a model costs in USD per million tokens.
type Price struct {
	Input  float64 `json:"input"`
	Output float64 `json:"output"`
}

// Prices maps model names (or name prefixes, see Lookup) to prices.
type Prices map[string]Price

// DefaultPrices returns OpenAI's list prices for the standard (non-batch,
// uncached) tier, in USD per 1M tokens, as published on
// https://openai.com/api/pricing in mid-2025 and still listed there in
// March 2026. They are estimates for budgeting: prices change, batch and
// cached-input discounts are not modelled, and the bill is the authority.
// text-davinci-003 is retired (January 2024); its price is the historical
// $0.02 per 1K tokens the original Alpaca run paid.
func DefaultPrices() Prices {
	return Prices{
		"gpt-4o":                 {Input: 2.50, Output: 10.00},
		"gpt-4o-2024-05-13":      {Input: 5.00, Output: 15.00},
		"gpt-4o-mini":            {Input: 0.15, Output: 0.60},
		"gpt-4.1":                {Input: 2.00, Output: 8.00},
		"gpt-4.1-mini":           {Input: 0.40, Output: 1.60},
		"gpt-4.1-nano":           {Input: 0.10, Output: 0.40},
		"gpt-4-turbo":            {Input: 10.00, Output: 30.00},
		"gpt-4":                  {Input: 30.00, Output: 60.00},
		"gpt-4-32k":              {Input: 60.00, Output: 120.00},
		"gpt-3.5-turbo":          {Input: 0.50, Output: 1.50},
		"gpt-3.5-turbo-instruct": {Input: 1.50, Output: 2.00},
		"gpt-5":                  {Input: 1.25, Output: 10.00},
		"gpt-5-mini":             {Input: 0.25, Output: 2.00},
		"gpt-5-nano":             {Input: 0.05, Output: 0.40},
		"o1":                     {Input: 15.00, Output: 60.00},
		"o1-mini":                {Input: 1.10, Output: 4.40},
		"o3":                     {Input: 2.00, Output: 8.00},
		"o3-mini":                {Input: 1.10, Output: 4.40},
		"o4-mini":                {Input: 1.10, Output: 4.40},
		"davinci-002":            {Input: 2.00, Output: 2.00},
		"babbage-002":            {Input: 0.40, Output: 0.40},
		"text-davinci-003":       {Input: 20.00, Output: 20.00},
	}
}

// LoadPrices reads a JSON price file, {"model": {"input": 0.15, "output":
// 0.6}, ...} in USD per 1M tokens, and returns the defaults with the file's
// entries added or replacing them.
func LoadPrices(path string) (Prices, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading price file: %w", err)
	}
	// Pointers tell a missing price from a free one: a file that forgets
	// "output" must not silently make output free.
	var raw map[string]struct {
		Input  *float64 `json:"input"`
		Output *float64 `json:"output"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("price file %s: want {\"model\": {\"input\": USD per 1M, \"output\": USD per 1M}}: %w", path, err)
	}
	prices := DefaultPrices()
	for model, p := range raw {
		if strings.TrimSpace(model) == "" {
			return nil, fmt.Errorf("price file %s: empty model name", path)
		}
		if p.Input == nil || p.Output == nil {
			return nil, fmt.Errorf("price file %s: model %q needs both \"input\" and \"output\"", path, model)
		}
		price := Price{Input: *p.Input, Output: *p.Output}
		if err := price.validate(); err != nil {
			return nil, fmt.Errorf("price file %s: model %q: %w", path, model, err)
		}
		prices[strings.ToLower(model)] = price
	}
	return prices, nil
}

// WithOverride returns a copy of p in which model costs exactly price: the
// --price-input/--price-output flags, for a model the table lacks or prices
// differently (a local server is free: 0 and 0).
func (p Prices) WithOverride(model string, price Price) (Prices, error) {
	if strings.TrimSpace(model) == "" {
		return nil, errors.New("price override needs a model name")
	}
	if err := price.validate(); err != nil {
		return nil, fmt.Errorf("price override for %q: %w", model, err)
	}
	out := make(Prices, len(p)+1)
	for m, pr := range p {
		out[m] = pr
	}
	out[strings.ToLower(model)] = price
	return out, nil
}

func (p Price) validate() error {
	for _, v := range []float64{p.Input, p.Output} {
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("price %v is not a non-negative number", v)
		}
	}
	return nil
}

// Lookup finds the price for model: an exact entry, or else the longest
// entry that is a prefix of the name ending at a '-' or ':', so a dated
// snapshot like gpt-4o-mini-2024-07-18 takes gpt-4o-mini's price while
// gpt-4.5-preview does not take gpt-4's.
func (p Prices) Lookup(model string) (Price, bool) {
	model = strings.ToLower(strings.TrimSpace(model))
	best, found := "", false
	for name := range p {
		lower := strings.ToLower(name)
		if (found && len(lower) <= len(best)) || !strings.HasPrefix(model, lower) {
			continue
		}
		if len(model) > len(lower) && model[len(lower)] != '-' && model[len(lower)] != ':' {
			continue
		}
		best, found = name, true
	}
	if !found {
		return Price{}, false
	}
	return p[best], true
}

// Cost is what u costs on model in USD; false when the model has no price.
func (p Prices) Cost(model string, u Usage) (float64, bool) {
	price, ok := p.Lookup(model)
	if !ok {
		return 0, false
	}
	return (float64(u.PromptTokens)*price.Input + float64(u.CompletionTokens)*price.Output) / 1e6, true
}
