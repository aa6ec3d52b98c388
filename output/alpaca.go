// Package output writes datasets in the formats fine-tuning tools read.
package output

// Example is one Alpaca-format training record. Field order is the JSON key
// order Alpaca's alpaca_data.json uses.
type Example struct {
	Instruction string `json:"instruction"`
	Input       string `json:"input"`
	Output      string `json:"output"`
}
