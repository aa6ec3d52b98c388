// Command selfinstruct turns a few human-written tasks into an
// instruction-tuning dataset, and runs the models that help it do so.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit codes are part of the interface for cron jobs and scripts.
const (
	exitOK          = 0
	exitError       = 1 // any failure not listed below
	exitBadInput    = 2 // a flag, file or field the user must fix
	exitNothingToDo = 3
	exitLocked      = 4
	exitBudget      = 5 // --max-cost reached before the target
	exitTeacherDown = 6 // the teacher could not be reached or refused the key
	// exitUnproductive: the teacher answers, but nothing it writes passes the
	// filters (a model that does not follow the prompt's format).
	exitUnproductive = 7
	exitInterrupted  = 130
)

// codedError carries the process exit code with the error that caused it.
type codedError struct {
	code int
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &codedError{code: code, err: err}
}

var rootCmd = &cobra.Command{
	Use:           "selfinstruct",
	Short:         "Generate instruction-tuning data with the Self-Instruct / Alpaca recipes",
	SilenceUsage:  true,
	SilenceErrors: true,
}

var logLevel string

func init() {
	rootCmd.PersistentFlags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	rootCmd.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		var lvl slog.Level
		if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
			return withCode(exitBadInput, fmt.Errorf("--log-level: %w", err))
		}
		slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})))
		return nil
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := rootCmd.ExecuteContext(ctx)
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "selfinstruct:", err)
	var ce *codedError
	if errors.As(err, &ce) {
		os.Exit(ce.code)
	}
	if errors.Is(err, context.Canceled) {
		os.Exit(exitInterrupted)
	}
	os.Exit(exitError)
}
