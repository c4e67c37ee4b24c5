//go:build mpi

package dist

/*
#cgo pkg-config: ompi
#include <mpi.h>
#include <stdlib.h>

static int rl_init(int *provided) {
	int done = 0;
	MPI_Initialized(&done);
	if (done) {
		MPI_Query_thread(provided);
		return MPI_SUCCESS;
	}
	int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, provided);
	if (rc == MPI_SUCCESS) MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
	return rc;
}
static int rl_rank(int *r) { return MPI_Comm_rank(MPI_COMM_WORLD, r); }
static int rl_size(int *s) { return MPI_Comm_size(MPI_COMM_WORLD, s); }
static int rl_allreduce_f32(float *x, int n) { return MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); }
static int rl_allreduce_f64(double *x, int n) { return MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD); }
static int rl_reduce_scatter_f32(float *x, float *out, int *counts) {
	return MPI_Reduce_scatter(x, out, counts, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}
static int rl_allgatherv_f32(float *x, int *counts, int *displs) {
	return MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, x, counts, displs, MPI_FLOAT, MPI_COMM_WORLD);
}
static int rl_allgatherv_f64(double *x, int *counts, int *displs) {
	return MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, x, counts, displs, MPI_DOUBLE, MPI_COMM_WORLD);
}
static void rl_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }
static int rl_finalize(void) { return MPI_Finalize(); }
static int rl_error_string(int code, char *buf) { int n = 0; return MPI_Error_string(code, buf, &n); }
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"unsafe"
)

// HasMPI reports whether this build can join MPI jobs.
const HasMPI = true

// Open joins the MPI job this process was launched in (a job of one rank
// when it was started without mpirun).
func Open() (Comm, error) {
	var provided C.int
	if rc := C.rl_init(&provided); rc != C.MPI_SUCCESS {
		return nil, fmt.Errorf("dist: MPI_Init_thread: %s", mpiError(rc))
	}
	if provided < C.MPI_THREAD_SERIALIZED {
		return nil, errors.New("dist: this MPI library cannot be called from more than one thread (MPI_THREAD_SERIALIZED), which Go needs")
	}
	var r, s C.int
	if rc := C.rl_rank(&r); rc != C.MPI_SUCCESS {
		return nil, fmt.Errorf("dist: MPI_Comm_rank: %s", mpiError(rc))
	}
	if rc := C.rl_size(&s); rc != C.MPI_SUCCESS {
		return nil, fmt.Errorf("dist: MPI_Comm_size: %s", mpiError(rc))
	}
	return &mpiComm{rank: int(r), size: int(s)}, nil
}

// mpiComm is MPI_COMM_WORLD.
type mpiComm struct{ rank, size int }

func (c *mpiComm) Rank() int { return c.rank }
func (c *mpiComm) Size() int { return c.size }

// maxCount is the largest element count one MPI call takes (a C int).
const maxCount = math.MaxInt32

func (c *mpiComm) AllReduceSum(x []float32) error {
	for len(x) > 0 {
		n := min(len(x), maxCount)
		if rc := C.rl_allreduce_f32((*C.float)(unsafe.Pointer(&x[0])), C.int(n)); rc != C.MPI_SUCCESS {
			return fmt.Errorf("dist: MPI_Allreduce: %s", mpiError(rc))
		}
		x = x[n:]
	}
	return nil
}

func (c *mpiComm) AllReduceSum64(x []float64) error {
	for len(x) > 0 {
		n := min(len(x), maxCount)
		if rc := C.rl_allreduce_f64((*C.double)(unsafe.Pointer(&x[0])), C.int(n)); rc != C.MPI_SUCCESS {
			return fmt.Errorf("dist: MPI_Allreduce: %s", mpiError(rc))
		}
		x = x[n:]
	}
	return nil
}

// counts returns the C counts and displacements of offsets.
func (c *mpiComm) counts(offsets []int) (counts, displs []C.int, err error) {
	if len(offsets) != c.size+1 {
		return nil, nil, fmt.Errorf("dist: %d offsets for %d ranks", len(offsets), c.size)
	}
	if offsets[c.size] > maxCount {
		return nil, nil, fmt.Errorf("dist: %d elements in one collective, more than MPI's %d", offsets[c.size], maxCount)
	}
	counts, displs = make([]C.int, c.size), make([]C.int, c.size)
	for r := range c.size {
		counts[r], displs[r] = C.int(offsets[r+1]-offsets[r]), C.int(offsets[r])
	}
	return counts, displs, nil
}

func (c *mpiComm) ReduceScatterSum(x []float32, offsets []int, out []float32) error {
	counts, _, err := c.counts(offsets)
	if err != nil {
		return err
	}
	if len(x) == 0 {
		return nil
	}
	var o *C.float
	if len(out) > 0 {
		o = (*C.float)(unsafe.Pointer(&out[0]))
	}
	if rc := C.rl_reduce_scatter_f32((*C.float)(unsafe.Pointer(&x[0])), o, &counts[0]); rc != C.MPI_SUCCESS {
		return fmt.Errorf("dist: MPI_Reduce_scatter: %s", mpiError(rc))
	}
	return nil
}

func (c *mpiComm) AllGather(x []float32, offsets []int) error {
	counts, displs, err := c.counts(offsets)
	if err != nil || len(x) == 0 {
		return err
	}
	if rc := C.rl_allgatherv_f32((*C.float)(unsafe.Pointer(&x[0])), &counts[0], &displs[0]); rc != C.MPI_SUCCESS {
		return fmt.Errorf("dist: MPI_Allgatherv: %s", mpiError(rc))
	}
	return nil
}

func (c *mpiComm) AllGather64(x []float64, offsets []int) error {
	counts, displs, err := c.counts(offsets)
	if err != nil || len(x) == 0 {
		return err
	}
	if rc := C.rl_allgatherv_f64((*C.double)(unsafe.Pointer(&x[0])), &counts[0], &displs[0]); rc != C.MPI_SUCCESS {
		return fmt.Errorf("dist: MPI_Allgatherv: %s", mpiError(rc))
	}
	return nil
}

func (c *mpiComm) Abort(code int) { C.rl_abort(C.int(code)) }

func (c *mpiComm) Close() error {
	if rc := C.rl_finalize(); rc != C.MPI_SUCCESS {
		return fmt.Errorf("dist: MPI_Finalize: %s", mpiError(rc))
	}
	return nil
}

// mpiError is the text of an MPI error code.
func mpiError(rc C.int) string {
	buf := (*C.char)(C.malloc(C.MPI_MAX_ERROR_STRING))
	defer C.free(unsafe.Pointer(buf))
	if C.rl_error_string(rc, buf) != C.MPI_SUCCESS {
		return fmt.Sprintf("MPI error %d", int(rc))
	}
	return C.GoString(buf)
}
