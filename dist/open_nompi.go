//go:build !mpi

package dist

// Open returns the job's communicator. This build has no MPI: it returns
// Single, or an error when a launcher started several ranks.
func Open() (Comm, error) {
	if n, v := launchedSize(); n > 1 {
		return nil, errNoMPI(n, v)
	}
	return Single{}, nil
}

// HasMPI reports whether this build can join MPI jobs.
const HasMPI = false
