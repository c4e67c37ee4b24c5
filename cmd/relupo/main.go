// Command relupo aligns language models with human preferences using RePO
// (ReLU-based Preference Optimization) and its baselines.
//
// Exit codes: 0 success, 1 a data, model or I/O error, 2 a usage error
// (unknown flag, bad flag value, missing argument).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/relupo/relupo/dist"
	"github.com/relupo/relupo/train"
	"github.com/spf13/cobra"
)

// usageError marks an error caused by how relupo was invoked; it exits with code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usagef returns a usage error (exit code 2) with a formatted message.
func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "relupo",
		Short:         "RePO preference optimization for Hugging Face language models, in one static binary",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentPreRunE = func(c *cobra.Command, _ []string) error {
		if n := dist.Launched(); n > 1 && c.Name() != "train" && c.Name() != "bench" {
			return usagef("%s: launched as one of %d ranks, but only 'relupo train' and 'relupo bench' run as ranks of an MPI job (the others would run %d copies writing the same output)", c.CommandPath(), n, n)
		}
		return nil
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())}
	})
	// Each subcommand lives in its own file as newXxxCmd.
	root.AddCommand(
		newTokenizeCmd(),
		newLogpsCmd(),
		newTrainCmd(),
		newEvalCmd(),
		newQuickstartCmd(),
		newBenchCmd(),
		newGenerateCmd(),
		newJudgeCmd(),
		newDataCmd(),
	)
	return root
}

func main() {
	if os.Getenv("GOGC") == "" {
		// Nearly all of relupo's heap is long-lived float32 tensors without
		// pointers, so collecting costs little, while Go's default (GOGC=100:
		// let garbage grow to the size of the live heap) would let a long
		// training run's footprint approach twice what it holds. 20% keeps
		// it close.
		debug.SetGCPercent(gcPercent)
	}
	os.Exit(run(os.Args[1:]))
}

// gcPercent is the garbage collector's target unless GOGC is set.
const gcPercent = 20

// run executes the command line and returns the process exit code.
func run(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(os.Stderr, "relupo: %v\n", err)
	var ue usageError
	var te *train.UsageError
	if errors.As(err, &ue) || errors.As(err, &te) || isCobraUsageError(err) {
		return 2
	}
	return 1
}

// isCobraUsageError recognises the errors cobra itself returns for a bad command line.
func isCobraUsageError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "accepts ", "requires at least", "requires at most", "required flag"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}
