package train

import (
	"math"
	"slices"
	"testing"

	"github.com/relupo/relupo/pref"
)

func TestQuantileAndDist(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		q    float64
		want float64
	}{
		{[]float64{7}, 0.9, 7},
		{[]float64{1, 2, 3, 4}, 0.5, 2.5},
		{[]float64{0, 10}, 0.9, 9},
		{[]float64{0, 10, 20}, 1, 20},
		{[]float64{0, 10, 20}, 0, 0},
	} {
		if got := pref.Quantile(tc.xs, tc.q); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("quantile(%v, %v) = %v, want %v", tc.xs, tc.q, got, tc.want)
		}
	}
	if d := distOf(nil); d != nil {
		t.Errorf("distOf(nil) = %+v", d)
	}
	d := distOf([]float64{3, 1, 2})
	want := Dist{Min: 1, P50: 2, P90: 2.8, P99: 2.98, Max: 3, Mean: 2}
	if d.Min != want.Min || d.P50 != want.P50 || math.Abs(d.P90-want.P90) > 1e-12 || math.Abs(d.P99-want.P99) > 1e-12 || d.Max != want.Max || d.Mean != want.Mean {
		t.Errorf("distOf = %+v, want %+v", *d, want)
	}
}

func TestSuggestGamma(t *testing.T) {
	// margins returns 100 margins: n[i] of them equal to v[i], the rest 0.
	margins := func(v []float64, n []int) []float64 {
		var out []float64
		for i := range v {
			out = append(out, slices.Repeat([]float64{v[i]}, n[i])...)
		}
		return append(out, make([]float64, 100-len(out))...)
	}
	for _, tc := range []struct {
		name string
		ms   []float64
		want []float64
	}{
		{"untrained: margins near 0", margins([]float64{-0.01, 0.01}, []int{50, 50}), []float64{0.2, 0.8}},
		{"15% at 0.2 and 0.4, 5% at 0.5", margins([]float64{0.45, 0.7}, []int{10, 5}), []float64{0.5, 0.8}},
		{"10% filtered is allowed", margins([]float64{0.2}, []int{10}), []float64{0.2, 0.8}},
		{"ties count as filtered", margins([]float64{0.2}, []int{11}), []float64{0.4, 0.8}},
		{"separated data", margins([]float64{0.9}, []int{20}), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := suggestGamma(tc.ms); !slices.Equal(got, tc.want) {
				t.Errorf("suggestGamma = %v, want %v", got, tc.want)
			}
		})
	}
}
