// Command relupo aligns language models with human preferences using RePO
// (ReLU-based Preference Optimization) and its baselines.
//
// Exit codes: 0 success, 1 a data, model or I/O error, 2 a usage error
// (unknown flag, bad flag value, missing argument), 130 stopped by SIGINT
// or SIGTERM (a second signal exits at once).
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
	"github.com/relupo/relupo/internal/textsafe"
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
		Version:       version(),
	}
	root.SetVersionTemplate("relupo {{.Version}}\n")
	root.PersistentPreRunE = func(c *cobra.Command, _ []string) error {
		if n := dist.Launched(); n > 1 && c.Name() != "train" && c.Name() != "bench" {
			return usagef("%s: launched as one of %d ranks, but only 'relupo train' and 'relupo bench' run as ranks of an MPI job (the others would run %d copies writing the same output)", c.CommandPath(), n, n)
		}
		return nil
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w%s (see '%s --help')", err, flagSuggestion(c, err), c.CommandPath())}
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
		newIterateCmd(),
		newJudgeCmd(),
		newScoreCmd(),
		newPairsCmd(),
		newDataCmd(),
		newMergeCmd(),
	)
	// After AddCommand, so that every command's flags accept '_' for '-'.
	root.SetGlobalNormalizationFunc(normalizeFlag)
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

// exitInterrupted is the exit code after SIGINT or SIGTERM (128 + SIGINT,
// as shells report an interrupted command).
const exitInterrupted = 130

// run executes the command line and returns the process exit code. The
// first SIGINT or SIGTERM cancels the command's context (training writes a
// checkpoint and stops; every other long loop stops at its next check); a
// second one exits at once, whatever the command is doing (reading a FIFO
// nobody writes, say).
func run(args []string) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case s := <-sigs:
			fmt.Fprintf(os.Stderr, "relupo: %v: stopping (send it again to exit at once)\n", s)
			cancel()
		case <-done:
			return
		}
		select {
		case s := <-sigs:
			fmt.Fprintf(os.Stderr, "relupo: %v again: exiting now\n", s)
			os.Exit(exitInterrupted)
		case <-done:
		}
	}()
	root := newRootCmd()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	// Messages may quote files (a template's error, a record): no escape
	// sequence they hold reaches the terminal.
	fmt.Fprintf(os.Stderr, "relupo: %s\n", textsafe.CleanLines(err.Error()))
	if errors.Is(err, train.ErrInterrupted) {
		fmt.Fprintf(os.Stderr, "relupo: to resume: %s\n", resumeCommand(args))
	}
	var ue usageError
	var te *train.UsageError
	switch {
	case ctx.Err() != nil || errors.Is(err, train.ErrInterrupted):
		return exitInterrupted
	case errors.As(err, &ue) || errors.As(err, &te) || isCobraUsageError(err):
		return 2
	}
	return 1
}

// resumeCommand is the command line that resumes an interrupted training
// run: this one, with --resume-from-checkpoint latest in place of any
// earlier resume flag, quoted for a POSIX shell.
func resumeCommand(args []string) string {
	words := []string{"relupo"}
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, _, hasValue := strings.Cut(a, "=")
		if n := strings.ReplaceAll(name, "_", "-"); n == "--resume-from-checkpoint" {
			if !hasValue {
				i++ // its value is the next word
			}
			continue
		}
		words = append(words, shellQuote(a))
	}
	return strings.Join(append(words, "--resume-from-checkpoint", "latest"), " ")
}

// shellQuote quotes s for a POSIX shell when it holds anything but plain
// characters.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
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
