package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/relupo/relupo/dist"
	"github.com/relupo/relupo/train"
)

// withRanks runs fn as this process's rank of the job mpirun launched (a
// job of one rank without mpirun). When fn fails on one rank of several,
// the others may be waiting in a collective for it: the error is printed
// with the rank and the whole job is aborted, so that no rank hangs. An
// interruption (SIGINT, SIGTERM: mpirun forwards them) reaches every rank
// at the same step, and each returns normally.
func withRanks(fn func(dist.Comm) error) error {
	comm, err := dist.Open()
	if err != nil {
		return err
	}
	err = fn(comm)
	if err != nil && comm.Size() > 1 && !errors.Is(err, train.ErrInterrupted) {
		fmt.Fprintf(os.Stderr, "relupo: rank %d of %d: %v; stopping every rank\n", comm.Rank(), comm.Size(), err)
		comm.Abort(1)
	}
	if cerr := comm.Close(); err == nil {
		err = cerr
	}
	return err
}

// rankNote describes the ranks of a job of several, for the start line.
func rankNote(comm dist.Comm, o train.Options) string {
	if comm.Size() == 1 {
		return ""
	}
	zero := ""
	if o.ZeroStage == 1 {
		zero = ", ZeRO stage 1"
	}
	return fmt.Sprintf(", %d ranks (global batch %d = %d per rank × %d ranks × %d accumulation%s)",
		comm.Size(), o.PerDeviceTrainBatchSize*comm.Size()*o.GradientAccumulationSteps, o.PerDeviceTrainBatchSize, comm.Size(), o.GradientAccumulationSteps, zero)
}
