// Package dist is relupo's data-parallel communication: a [Comm] joins the
// processes (ranks) of one training job, so that each computes gradients on
// its share of a batch and all apply the same update.
//
// The communicator is MPI's (OpenMPI, MPICH): `mpirun -np N relupo train …`
// runs N ranks of one job, with the launcher, hostfiles and schedulers HPC
// users already run. MPI support needs cgo and libmpi, so it is built only
// with `go build -tags mpi`; the default build is cgo-free and static, and
// [Open] in it returns the single-process [Single] — or refuses to start
// when a launcher started several ranks, instead of running N independent
// copies that would overwrite each other's output.
package dist

import (
	"fmt"
	"os"
	"strconv"
)

// Comm joins the ranks of one job. Every collective must be called by all
// ranks in the same order. A Comm is used by one goroutine at a time.
type Comm interface {
	// Rank is this process's index in [0, Size).
	Rank() int
	// Size is the number of ranks.
	Size() int
	// AllReduceSum replaces x on every rank by the element-wise sum of
	// all ranks' x.
	AllReduceSum(x []float32) error
	// AllReduceSum64 is AllReduceSum for float64 values.
	AllReduceSum64(x []float64) error
	// ReduceScatterSum sums x element-wise across ranks and leaves on
	// rank r the elements of its shard, [offsets[r], offsets[r+1]), in
	// out (len offsets[r+1] − offsets[r]). offsets has Size+1 entries,
	// from 0 to len(x).
	ReduceScatterSum(x []float32, offsets []int, out []float32) error
	// AllGather fills x on every rank with each rank's shard: rank r
	// contributes x[offsets[r]:offsets[r+1]].
	AllGather(x []float32, offsets []int) error
	// AllGather64 is AllGather for float64 values.
	AllGather64(x []float64, offsets []int) error
	// Abort ends every rank of the job at once (after this rank met an
	// error the others cannot know of), with the given exit code.
	Abort(code int)
	// Close leaves the job; no collective may follow.
	Close() error
}

// Single is the communicator of a job with one process: every collective
// leaves its data as it is.
type Single struct{}

func (Single) Rank() int                          { return 0 }
func (Single) Size() int                          { return 1 }
func (Single) AllReduceSum([]float32) error       { return nil }
func (Single) AllReduceSum64([]float64) error     { return nil }
func (Single) AllGather([]float32, []int) error   { return nil }
func (Single) AllGather64([]float64, []int) error { return nil }
func (Single) Abort(code int)                     { os.Exit(code) }
func (Single) Close() error                       { return nil }
func (Single) ReduceScatterSum(x []float32, offsets []int, out []float32) error {
	copy(out, x[offsets[0]:offsets[1]])
	return nil
}

// Shards splits n elements into size contiguous shards, as even as
// possible (the first n mod size shards one larger), and returns the
// size+1 offsets.
func Shards(n, size int) []int {
	off := make([]int, size+1)
	for r := range size {
		off[r+1] = off[r] + n/size
		if r < n%size {
			off[r+1]++
		}
	}
	return off
}

// Launched reports how many ranks a launcher (mpirun, mpiexec, srun with
// PMI) started this process among; 0 when it was not started by one.
func Launched() int {
	n, _ := launchedSize()
	return n
}

// launchedSize reports how many ranks a launcher started this process
// among, from the environment variables of OpenMPI, MPICH/Hydra (PMI) and
// PMIx; 0 when none says.
func launchedSize() (int, string) {
	for _, v := range []string{"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"} {
		if n, err := strconv.Atoi(os.Getenv(v)); err == nil && n > 0 {
			return n, v
		}
	}
	return 0, ""
}

// errNoMPI is Open's refusal in a build without MPI.
func errNoMPI(n int, v string) error {
	return fmt.Errorf("dist: launched as one of %d ranks (%s=%d), but this relupo was built without MPI; build it with 'go build -tags mpi ./cmd/relupo' (cgo and libmpi: apt-get install openmpi-bin libopenmpi-dev), or run it without mpirun", n, v, n)
}
