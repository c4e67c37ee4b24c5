package dist

import (
	"slices"
	"testing"
)

func TestShards(t *testing.T) {
	for _, tc := range []struct {
		n, size int
		want    []int
	}{
		{10, 1, []int{0, 10}},
		{10, 3, []int{0, 4, 7, 10}},
		{2, 4, []int{0, 1, 2, 2, 2}},
		{0, 2, []int{0, 0, 0}},
	} {
		if got := Shards(tc.n, tc.size); !slices.Equal(got, tc.want) {
			t.Errorf("Shards(%d, %d) = %v, want %v", tc.n, tc.size, got, tc.want)
		}
	}
}

// Single's collectives leave the data as it is: the sum and the gather
// over one rank.
func TestSingle(t *testing.T) {
	var c Comm = Single{}
	x := []float32{1, 2, 3}
	if err := c.AllReduceSum(x); err != nil || !slices.Equal(x, []float32{1, 2, 3}) {
		t.Fatalf("AllReduceSum: %v %v", x, err)
	}
	out := make([]float32, 3)
	if err := c.ReduceScatterSum(x, []int{0, 3}, out); err != nil || !slices.Equal(out, x) {
		t.Fatalf("ReduceScatterSum: %v %v", out, err)
	}
	if c.Rank() != 0 || c.Size() != 1 {
		t.Fatal("Single is rank 0 of 1")
	}
}

// Open refuses, in a build without MPI, to run as one of several ranks.
func TestOpenUnderLauncher(t *testing.T) {
	t.Setenv("OMPI_COMM_WORLD_SIZE", "3")
	if Launched() != 3 {
		t.Fatalf("Launched() = %d, want 3", Launched())
	}
	if HasMPI {
		t.Skip("built with MPI")
	}
	if _, err := Open(); err == nil {
		t.Fatal("Open accepted 3 ranks without MPI")
	}
	t.Setenv("OMPI_COMM_WORLD_SIZE", "1")
	if c, err := Open(); err != nil || c.Size() != 1 {
		t.Fatalf("one rank: %v %v", c, err)
	}
}
